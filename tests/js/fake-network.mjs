// Test doubles for long-poll.js: a wait route behind a network the test controls, a browser's network and
// visibility events, and a simulated clock (node's mock timers). No server, no framework.

/** long-poll.js, an ES module of its package (eventi/static/js/package.json). */
export async function loadLongPoll() {
  return import(new URL("../../eventi/static/js/long-poll.js", import.meta.url));
}

export const PENDING = { orderId: "o1", paymentStatus: "pending", amount: 1500, final: false, waitedMs: 60000 };
export const COMPLETED = { orderId: "o1", paymentStatus: "completed", amount: 1500, mpesaReceipt: "R1", final: true, waitedMs: 40 };

export function answer(body, headers = {}, status = 200) {
  return { ok: status >= 200 && status < 300, status, headers: new Headers(headers), json: async () => body };
}

export const quiet = { log() {}, warn() {} };

/**
 * The wait route as the page sees it through a network. network: "up" (holds answer "pending" after holdMs,
 * "completed" at once when paid), "down" (fetch fails at once, like a refused connection) or "blackhole" (a
 * request is never answered). Like the browser's fetch, a request's signal aborts it. Counts requests in flight.
 * A request whose URL asks for `heartbeat=N` is answered as the server streams it: the 200 at once, a space
 * then and every N s while held, then the JSON body; its call stays "in flight" until the body ends.
 */
export class FakeWaitRoute {
  constructor({ holdMs = 60000 } = {}) {
    this.holdMs = holdMs;
    this.network = "up";
    this.paid = false;
    this.status = 200;     // answer this HTTP status (with an error body) instead of holding
    this.calls = [];       // {url, signal, outcome}
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.held = new Set(); // answers waiting for the payment
    this.fetch = (url, init) => this.#request(url, init);
  }

  #request(url, init) {
    const call = { url, signal: init.signal, outcome: "in flight", kill: null };
    this.calls.push(call);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve, reject) => {
      let timer = null;
      const finish = (outcome, settle) => {
        if (call.outcome !== "in flight") return;
        call.outcome = outcome;
        this.inFlight -= 1;
        clearTimeout(timer);
        this.held.delete(paid);
        settle();
      };
      const paid = () => finish("completed", () => resolve(answer(COMPLETED)));
      call.kill = () => { clearTimeout(timer); this.held.delete(paid); };
      init.signal.addEventListener("abort", () => finish("aborted", () => reject(init.signal.reason)), { once: true });
      if (this.network === "down") return finish("failed", () => reject(new TypeError("Failed to fetch")));
      if (this.network === "blackhole") return;
      if (this.status !== 200) {
        return finish(`HTTP ${this.status}`, () => resolve(answer({ error: "store_unavailable" }, {}, this.status)));
      }
      const beat = Number(new URL(url, "http://x/").searchParams.get("heartbeat"));
      if (beat > 0) return this.#stream(call, beat * 1000, resolve, finish);
      if (this.paid) return paid();
      this.held.add(paid);
      timer = setTimeout(() => finish("pending", () => resolve(answer(PENDING))), this.holdMs);
    });
  }

  #stream(call, beatMs, resolve, finish) {
    let out, beat = null, end = null;
    const encoder = new TextEncoder();
    const stop = () => { clearTimeout(beat); clearTimeout(end); this.held.delete(paid); };
    const body = new ReadableStream({ start(controller) { out = controller; } });
    const last = (json) => finish(json.paymentStatus, () => { stop(); out.enqueue(encoder.encode(JSON.stringify(json))); out.close(); });
    const paid = () => last(COMPLETED);
    const heartbeat = () => { out.enqueue(encoder.encode(" ")); beat = setTimeout(heartbeat, beatMs); };
    call.kill = stop; // silence: no more bytes, and no end
    call.signal.addEventListener("abort", () => { stop(); out.error(call.signal.reason); }, { once: true });
    resolve({ ok: true, status: 200, headers: new Headers({ "Content-Type": "application/json" }), body,
              json: async () => { throw new Error("a streamed body is read with getReader()"); } });
    heartbeat();
    if (this.paid) return paid();
    this.held.add(paid);
    end = setTimeout(() => last(PENDING), this.holdMs);
  }

  /** The connections of the requests in flight die silently: no answer ever comes (an abort still ends them). */
  killInFlight() {
    for (const call of this.calls) if (call.outcome === "in flight") call.kill();
  }

  pay() {
    this.paid = true;
    for (const paid of [...this.held]) paid();
  }
}

/** window, document and navigator as long-poll.js uses them, driven by the test. */
export function fakeBrowser() {
  const window = new EventTarget();
  const document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  const navigator = { onLine: true };
  const fire = (target, type) => target.dispatchEvent(new Event(type));
  return {
    window, document, navigator,
    goOffline() { navigator.onLine = false; fire(window, "offline"); },
    goOnline() { navigator.onLine = true; fire(window, "online"); },
    hide() { document.visibilityState = "hidden"; fire(document, "visibilitychange"); },
    show() { document.visibilityState = "visible"; fire(document, "visibilitychange"); },
  };
}

/** Lets every promise continuation that is ready run (setImmediate is not mocked). */
export async function flush() {
  for (let i = 0; i < 3; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** Simulated time: setTimeout and Date follow t.mock.timers, moved on by advance(). */
export function simulatedClock(t) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  return {
    async advance(ms, step = 50) {
      await flush();
      for (let done = 0; done < ms; done += step) {
        t.mock.timers.tick(Math.min(step, ms - done));
        await flush();
      }
    },
  };
}

/** The state of a promise now: "pending", {value} or {error}. */
export async function settled(promise) {
  const marker = {};
  const outcome = promise.then((value) => ({ value }), (error) => ({ error }));
  const result = await Promise.race([outcome, new Promise((resolve) => setImmediate(() => resolve(marker)))]);
  return result === marker ? "pending" : result;
}
