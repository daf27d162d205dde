// The room's WebSocket protocol: JSON frames {id, type, data}. A request is answered by a
// `response` or `error` frame with the same id; frames without an id are events.

const REQUEST_TIMEOUT_MS = 30000;
// In a cluster, a node that does not own the room closes the socket with this code and
// the owner's URL as the reason. The page moves to the owner's Studio (its security
// policy lets it talk to its own origin only), counting hops so a loop ends in an error.
const ROOM_MOVED = 4307;
const MAX_REDIRECTS = 5;
const ARRIVED_HOPS = Number(new URLSearchParams(location.search).get("hops") || 0);

export class RoomError extends Error {
  constructor({ code = "failed", message = "", details = null } = {}) {
    super(message || code);
    this.code = code;
    this.details = details;
  }
}

export class RoomSocket {
  // handlers: onReady(data), onEvent(type, data), onClose({opened, code, reason})
  constructor(room, token, handlers) {
    this.room = room;
    this.token = token;
    this.handlers = handlers;
    this.pending = new Map();
    this.nextId = 1;
    this.opened = false;
    this.ws = null;
  }

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // Browsers cannot set headers on a WebSocket, so the token rides in a subprotocol,
    // which stays out of URLs and access logs; the room answers with "taskroom".
    const url = `${scheme}://${location.host}/rooms/${encodeURIComponent(this.room)}`;
    this.ws = new WebSocket(url, ["taskroom", `taskroom.bearer.${this.token}`]);
    this.ws.onopen = () => { this.opened = true; };
    this.ws.onmessage = (msg) => this.receive(msg.data);
    this.ws.onclose = (ev) => {
      if (ev.code === ROOM_MOVED && ev.reason) {
        this.moveTo(ev.reason);
        return;
      }
      this.failPending("the connection to the room closed");
      this.handlers.onClose({ opened: this.opened, code: ev.code, reason: ev.reason });
    };
  }

  moveTo(owner) {
    this.failPending("the room is served by another node");
    if (owner.replace(/\/$/, "") === location.origin || ARRIVED_HOPS >= MAX_REDIRECTS) {
      // "opened" so the page shows this reason rather than probing the token again.
      this.handlers.onClose({ opened: true, code: ROOM_MOVED,
        reason: `the room servers redirected in a loop (${ARRIVED_HOPS} hops, then ${owner})` });
      return;
    }
    const next = new URL("/studio", owner);
    next.search = new URLSearchParams({ room: this.room, hops: String(ARRIVED_HOPS + 1) });
    next.hash = new URLSearchParams({ token: this.token }).toString();
    location.assign(next.href);
  }

  close() {
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "left");
    }
    this.failPending("you left the room");
  }

  failPending(message) {
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new RoomError({ code: "unavailable", message }));
    }
    this.pending.clear();
  }

  request(type, data = {}) {
    const id = `s${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new RoomError({ code: "unavailable", message: "not connected to the room" }));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RoomError({ code: "timeout", message: `no answer to ${type} within 30 s` }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ id, type, data }));
    });
  }

  receive(text) {
    const frame = JSON.parse(text);
    const waiting = frame.id !== undefined ? this.pending.get(frame.id) : undefined;
    if (waiting) {
      this.pending.delete(frame.id);
      clearTimeout(waiting.timer);
      if (frame.type === "error") waiting.reject(new RoomError(frame.data));
      else waiting.resolve(frame.data);
    } else if (frame.type === "room.ready") {
      this.handlers.onReady(frame.data);
    } else {
      this.handlers.onEvent(frame.type, frame.data || {});
    }
  }
}

// A refused WebSocket upgrade hides its reason from the page; ask the same question over HTTP.
// Returns {message, refused}: refused is true when the server turned the token down.
export async function explainRefusal(room, token) {
  let response;
  try {
    response = await fetch(`/studio/api/check?room=${encodeURIComponent(room)}`, {
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
    });
  } catch (err) {
    return { message: `Cannot reach the room server at ${location.origin}: ${err.message}` };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = body.error || `HTTP ${response.status}`;
    return { message: `The room server refused to let you join room "${room}": ${reason}`,
      refused: true };
  }
  return { message: `Your token is valid for room "${room}", but the WebSocket to the room ` +
    "could not be opened (is a proxy dropping WebSocket upgrades?)." };
}
