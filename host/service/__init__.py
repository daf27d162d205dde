"""The service host: agent classes called into rooms by signed webhook."""
