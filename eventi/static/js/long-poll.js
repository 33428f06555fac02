// Long-poll client for eventi's GET /api/orders/<id>/wait. One ES module, no dependencies: the package
// @eventi/long-poll (package.json, long-poll.d.ts beside it). Interface: docs/frontend.md.

const DEFAULTS = {
  maxAttempts: 4,            // holds answered with "pending" back to back (then slower, or give up)
  listenSeconds: 0,          // keep listening this long from the start, with a pause between holds after maxAttempts
  slowPauseMs: 60000,        // the pause between holds once maxAttempts holds have run out (jittered ±10 %)
  heartbeatSeconds: 5,       // ask the server for a heartbeat this often (0: none); a silent connection is dead
  silenceMs: undefined,      // no byte for this long ends a request (default: 2 heartbeats + 1 s)
  holdSeconds: 60,           // the server's hold when neither timeoutSeconds nor the URL's timeout sets one
  deadlineMarginMs: 10000,   // a hold still unanswered this long after its end is a dead connection
  errorBudgetMs: 120000,     // keep retrying while errors (the browser online) have lasted less than this
  maxErrors: Infinity,       // optional cap on the number of errors in all
  offlineAfterErrors: 2,     // network errors in a row that mean "offline" even when navigator.onLine is true
  backoffBaseMs: 1000,       // first backoff ceiling; doubles per error (full jitter)
  backoffMaxMs: 15000,
};

export class WaitError extends Error {
  constructor(message, status, code = null) {
    super(message);
    this.name = "WaitError";
    this.status = status; // HTTP status, or 0 for a network error
    this.code = code;     // the error body's `error` code (JSON or problem+json), when there was one
  }
}

const SILENT = { log() {}, warn() {} };

/** Why a request in flight was stopped by the client itself (never seen by the caller). */
class Deadline extends Error {}
class Silence extends Error {}
class Restart extends Error {}

/**
 * Wait for an order's final payment status with as few requests as possible.
 * Resolves {final, body, attempts, requests}: final is true with the final status body (the server's `final`
 * decides: completed, failed, cancelled, refund_needed, and any final status added later), or false with the
 * last pending body after maxAttempts holds. A pending answer carrying
 * Retry-After came back early because the server was stopping: it is not a hold. A hold unanswered by its
 * deadline (its length + deadlineMarginMs) is aborted and asked again. Rejects with WaitError on 4xx (unknown
 * order or wrong token), once errors have lasted errorBudgetMs while the browser was online (or exceed
 * maxErrors), or with the signal's reason when aborted. At most one request is in flight at any time.
 * With listenSeconds, holds go on after maxAttempts at the slow cadence (a pause of slowPauseMs before each)
 * until that many seconds after the call. With heartbeatSeconds the server streams a space that often while
 * it holds: a request silent for silenceMs is aborted (its connection closed) and asked again.
 */
export async function waitForPayment(waitUrl, options = {}) {
  const opts = withDefaults(options);
  const log = opts.log === null ? SILENT : opts.log || console;
  const doFetch = opts.fetch || globalThis.fetch.bind(globalThis);
  let url = opts.timeoutSeconds ? withParam(waitUrl, "timeout", opts.timeoutSeconds) : waitUrl;
  if (opts.heartbeatSeconds > 0) url = withParam(url, "heartbeat", opts.heartbeatSeconds);
  const deadlineMs = holdSeconds(url, opts.holdSeconds) * 1000 + opts.deadlineMarginMs;
  const silenceMs = opts.heartbeatSeconds > 0 ? (opts.silenceMs ?? opts.heartbeatSeconds * 2000 + 1000) : Infinity;
  const listenUntil = opts.listenSeconds > 0 ? Date.now() + opts.listenSeconds * 1000 : 0;
  const watch = new NetworkWatch(opts, log);
  const errors = new ErrorBudget(opts, watch, log);
  let attempts = 0, requests = 0, body = null;
  let pause = false; // a hold ran out in the slow cadence: pause before the next (not after an error or a restart)

  try {
    while (attempts < opts.maxAttempts || Date.now() < listenUntil) {
      throwIfAborted(opts.signal);
      if (pause) {
        // The slow cadence: a pause between holds (cut short by "online", focus or the page shown again).
        const ms = Math.min(opts.slowPauseMs * (0.9 + Math.random() * 0.2), listenUntil - Date.now());
        if (attempts === opts.maxAttempts && opts.onSlow) opts.onSlow();
        log.log(`Long polling: still pending; asking again in ${Math.round(ms / 1000)} s`);
        await watch.sleep(ms, true);
        pause = false;
        if (Date.now() >= listenUntil) break;
      }
      attempts += 1;
      log.log(`Long polling attempt ${attempts}/${opts.maxAttempts} - Waiting for payment...`);
      if (opts.onAttempt) opts.onAttempt(attempts);
      let answer;
      try {
        requests += 1;
        answer = await watch.request(doFetch, url, deadlineMs, silenceMs);
      } catch (err) {
        throwIfAborted(opts.signal); // a fetch that ignored the signal must not lead to a backoff or a next hold
        attempts -= 1; // neither a restart nor an error is a hold: errors have their own budget
        if (err instanceof Restart) continue;
        // An abort closes that connection: the next try never goes over it.
        const what = err instanceof Deadline ? `no answer within ${deadlineMs} ms`
          : err instanceof Silence ? `connection silent for ${silenceMs} ms` : `network error (${err.message})`;
        await errors.afterError(0, null, what, true);
        continue;
      }
      const { response } = answer;
      if (response.ok && answer.body && answer.body.error) {
        // The store failed after a streamed 200 had started: the body says so, and it is worth retrying.
        await errors.afterError(response.status, answer.body.retryAfter, `server error (${answer.body.error})`, false);
        attempts -= 1;
        continue;
      }
      if (response.ok) {
        body = answer.body;
        const hinted = response.headers.get("Retry-After") ?? body.retryAfter; // a streamed answer says it in the body
        const retryAfter = hinted === undefined || hinted === null ? null : String(hinted);
        if (body.final || retryAfter === null) errors.reset();
        if (body.final) {
          log.log(`Payment status resolved! Final status: ${body.paymentStatus}`);
          return { final: true, body, attempts, requests };
        }
        if (retryAfter !== null) {
          // Answered early because the server is stopping (a deploy): not a hold. Like a 503, it is an error
          // and waits the (short) backoff, so a deploy's pages come back spread.
          await errors.afterError(response.status, retryAfter, "server stopping", false);
          attempts -= 1;
        } else {
          pause = attempts >= opts.maxAttempts; // past the fast holds: the slow cadence
        }
        continue; // the hold expired with "pending": ask again (at once while the fast holds last)
      }
      if (response.status === 429 || response.status >= 500) {
        await errors.afterError(response.status, response.headers.get("Retry-After"), `HTTP ${response.status}`, false);
        attempts -= 1;
        continue;
      }
      throw new WaitError(`The server answered HTTP ${response.status}`, response.status, answer.body && answer.body.error);
    }
  } finally {
    watch.close();
  }
  log.log(`Long polling stopped: no final status after ${attempts} attempts; last status: ${body ? body.paymentStatus : "unknown"}`);
  return { final: false, body, attempts, requests };
}

/**
 * The one request in flight, the backoff sleep, and the browser's network and visibility events: `online`
 * and the page becoming visible cut a backoff short, and restart a hold that lived through the page being
 * hidden or offline (its connection may have died silently). Reports "offline", "retrying" and "online".
 */
class NetworkWatch {
  constructor(opts, log) {
    this.opts = opts;
    this.log = log;
    this.state = "online";  // the last state reported to onNetwork
    this.hold = null;       // {controller, suspect} of the request in flight
    this.wake = null;       // ends the backoff sleep early
    this.backOnline = false; // an "online" event came since the error budget last looked
    this.win = pick(opts.window, globalThis.window);
    this.doc = pick(opts.document, globalThis.document);
    this.nav = pick(opts.navigator, globalThis.navigator);
    this.unlisten = [
      listen(this.win, "online", () => { this.backOnline = true; this.resume("back online"); }),
      listen(this.win, "focus", () => this.resume("page focused", true)),
      listen(this.win, "offline", () => { this.report("offline"); this.suspect(); }),
      listen(this.doc, "visibilitychange", () => {
        if (this.doc.visibilityState === "hidden") this.suspect();
        else this.resume("page visible again");
      }),
    ];
  }

  online() {
    return !this.nav || this.nav.onLine !== false;
  }

  report(state) {
    if (state === this.state) return;
    this.state = state;
    if (this.opts.onNetwork) this.opts.onNetwork(state);
  }

  suspect() {
    if (this.hold) this.hold.suspect = true;
  }

  resume(why, pauseOnly = false) {
    if (pauseOnly && !this.pausing) return; // focus ends the slow cadence's pause, not an error's backoff
    if (this.wake) {
      this.log.log(`Long polling: ${why}; checking again now`);
      this.wake();
    } else if (this.hold && this.hold.suspect) {
      this.log.log(`Long polling: ${why}; the request in flight may be dead, asking again`);
      this.hold.controller.abort(new Restart(why));
    }
  }

  /** One fetch and its JSON body, aborted by the caller's signal, the deadline, a silence or a restart. */
  async request(doFetch, url, deadlineMs, silenceMs) {
    const signal = this.opts.signal;
    const controller = new AbortController();
    const onAbort = () => controller.abort(abortReason(signal));
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    // Raced against the fetch, so even a fetch that ignores its signal cannot hold the client.
    const stopped = new Promise((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    stopped.catch(() => {});
    const timer = setTimeout(() => controller.abort(new Deadline()), deadlineMs);
    // The watchdog: every byte (the headers, each heartbeat) pushes it back; silence aborts the request.
    let watchdog = null;
    const alive = () => {
      clearTimeout(watchdog);
      if (silenceMs !== Infinity) watchdog = setTimeout(() => controller.abort(new Silence()), silenceMs);
    };
    alive();
    this.hold = { controller, suspect: false };
    try {
      const init = { headers: { Accept: "application/json, application/problem+json" }, cache: "no-store",
                     signal: controller.signal };
      const response = await settleFirst(doFetch(url, init), stopped);
      alive();
      const body = await settleFirst(readJson(response, alive), stopped);
      return { response, body };
    } finally {
      clearTimeout(timer);
      clearTimeout(watchdog);
      this.hold = null;
      if (signal) signal.removeEventListener("abort", onAbort);
    }
  }

  /** Sleep ms, or less if the caller aborts (rejects) or the network comes back (resolves); a pause (the slow
   * cadence's) also ends when the window gets the focus. */
  sleep(ms, pause = false) {
    const signal = this.opts.signal;
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) return reject(abortReason(signal)); // "abort" fired already: no event will come
      const done = (settle) => {
        clearTimeout(timer);
        this.wake = null;
        this.pausing = false;
        if (signal) signal.removeEventListener("abort", stop);
        settle();
      };
      const stop = () => done(() => reject(abortReason(signal)));
      const timer = setTimeout(() => done(resolve), ms);
      this.wake = () => done(resolve);
      this.pausing = pause;
      if (signal) signal.addEventListener("abort", stop, { once: true });
    });
  }

  close() {
    for (const off of this.unlisten) off();
  }
}

/** Errors in a row, measured in time while the browser is online; each one followed by a jittered backoff. */
class ErrorBudget {
  constructor(opts, watch, log) {
    this.opts = opts;
    this.watch = watch;
    this.log = log;
    this.count = 0;            // errors in all, for maxErrors
    this.inARow = 0;           // errors since the last good answer: the backoff's exponent
    this.networkInARow = 0;    // of which network errors, the last ones in a row
    this.since = null;         // when the current run of errors began (online time only)
  }

  reset() {
    this.since = null;
    this.inARow = 0;
    this.networkInARow = 0;
    this.watch.report("online");
  }

  giveUp(after, what, status) {
    this.log.warn(`Long polling: giving up after ${after}: ${what}`);
    return new WaitError(`Giving up after ${after}: ${what}`, status);
  }

  async afterError(status, retryAfter, what, network) {
    const opts = this.opts;
    this.count += 1;
    if (this.count > opts.maxErrors) throw this.giveUp(`${this.count} errors`, what, status);
    this.inARow += 1;
    this.networkInARow = network ? this.networkInARow + 1 : 0;
    if (this.watch.backOnline) this.since = null; // the network came back since: a fresh budget
    this.watch.backOnline = false;
    const now = Date.now();
    if (network && !this.watch.online()) {
      this.since = null; // offline time does not count: the page keeps waiting for the network
      this.watch.report("offline");
    } else {
      if (this.since === null) this.since = now;
      if (now - this.since >= opts.errorBudgetMs) {
        throw this.giveUp(`${Math.round((now - this.since) / 1000)} s of errors`, what, status);
      }
      this.watch.report(network && this.networkInARow >= opts.offlineAfterErrors ? "offline" : "retrying");
    }
    const ceiling = Math.min(opts.backoffMaxMs, opts.backoffBaseMs * 2 ** Math.min(this.inARow - 1, 30));
    let delay = Math.random() * ceiling; // full jitter: clients that failed together do not retry together
    const hinted = Number(retryAfter) * 1000;
    if (hinted > 0) delay = Math.max(delay, hinted);
    this.log.warn(`Long polling: ${what}; retrying in ${Math.round(delay)} ms`);
    await this.watch.sleep(delay);
  }
}

/** The JSON body of an answer (application/json or application/problem+json), or null when it has none.
 * A streamed body is read chunk by chunk, each chunk calling alive(): leading heartbeat spaces are valid JSON. */
async function readJson(response, alive) {
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok && !/json/.test(type)) return null;
  if (!response.body || !response.body.getReader) return response.json().catch(() => null);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    alive();
    text += decoder.decode(value, { stream: true });
  }
  text += decoder.decode();
  if (!response.ok) {
    try { return JSON.parse(text); } catch { return null; }
  }
  return JSON.parse(text);
}

/** The first of two promises to settle; the loser's later rejection is handled (no "Uncaught (in promise)"). */
function settleFirst(work, stopped) {
  const running = Promise.resolve(work);
  running.catch(() => {});
  return Promise.race([running, stopped]);
}

function withDefaults(options) {
  const opts = { ...DEFAULTS };
  for (const [name, value] of Object.entries(options)) if (value !== undefined) opts[name] = value;
  return opts;
}

function holdSeconds(url, fallback) {
  const asked = Number(new URL(url, "http://localhost/").searchParams.get("timeout"));
  return asked > 0 ? asked : fallback;
}

function pick(given, global) {
  return given !== undefined ? given : global;
}

function listen(target, type, handler) {
  if (!target || !target.addEventListener) return () => {};
  target.addEventListener(type, handler);
  return () => target.removeEventListener(type, handler);
}

function throwIfAborted(signal) {
  if (signal && signal.aborted) throw abortReason(signal);
}

function abortReason(signal) {
  return signal.reason !== undefined ? signal.reason : new DOMException("The wait was aborted.", "AbortError");
}

function withParam(url, name, value) {
  const u = new URL(url, globalThis.location ? globalThis.location.href : "http://localhost/");
  u.searchParams.set(name, String(value));
  return /^https?:/.test(url) ? u.href : u.pathname + u.search;
}
