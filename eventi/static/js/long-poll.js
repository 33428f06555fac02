// Long-poll client for eventi's GET /api/orders/<id>/wait. One file, no dependencies:
// copy it as it is into another front end. Interface: docs/frontend.md.

const DEFAULTS = {
  maxAttempts: 4,      // holds answered with "pending" before giving up
  maxErrors: 6,        // network errors / 5xx / 429 / "server stopping" answers, each followed by a backoff
  backoffBaseMs: 1000, // first backoff ceiling; doubles per error (full jitter)
  backoffMaxMs: 15000,
};

export class WaitError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "WaitError";
    this.status = status; // HTTP status, or 0 for a network error
  }
}

/**
 * Wait for an order's final payment status with as few requests as possible.
 * Resolves {final, body, attempts, requests}: final is true with the final status body,
 * or false with the last pending body after maxAttempts holds. A pending answer carrying
 * Retry-After came back early because the server was stopping: it is not a hold. Rejects with WaitError on
 * 4xx (unknown order or wrong token), when errors exceed maxErrors, or when aborted.
 */
export async function waitForPayment(waitUrl, options = {}) {
  const opts = { ...DEFAULTS, ...options };
  const log = opts.log || console;
  const doFetch = opts.fetch || globalThis.fetch.bind(globalThis);
  const url = opts.timeoutSeconds ? withParam(waitUrl, "timeout", opts.timeoutSeconds) : waitUrl;
  let attempts = 0, errors = 0, requests = 0, body = null;

  while (attempts < opts.maxAttempts) {
    throwIfAborted(opts.signal);
    attempts += 1;
    log.log(`Long polling attempt ${attempts}/${opts.maxAttempts} - Waiting for payment...`);
    if (opts.onAttempt) opts.onAttempt(attempts);
    let response;
    try {
      requests += 1;
      response = await doFetch(url, { headers: { Accept: "application/json" }, cache: "no-store", signal: opts.signal });
    } catch (err) {
      throwIfAborted(opts.signal);
      errors = await afterError(opts, errors, 0, null, log, `network error (${err.message})`);
      attempts -= 1; // an error is not a hold: it has its own budget
      continue;
    }
    throwIfAborted(opts.signal); // a fetch that ignored the signal must not lead to a backoff or a next hold
    if (response.ok) {
      body = await response.json();
      throwIfAborted(opts.signal);
      if (body.final) {
        log.log(`Payment status resolved! Final status: ${body.paymentStatus}`);
        return { final: true, body, attempts, requests };
      }
      const retryAfter = response.headers.get("Retry-After");
      if (retryAfter !== null) {
        // Answered early because the server is stopping (a deploy): not a hold. Like a 503, it takes
        // one from the error budget and waits the (short) backoff, so a deploy's pages come back spread.
        errors = await afterError(opts, errors, response.status, retryAfter, log, "server stopping");
        attempts -= 1;
        continue;
      }
      continue; // the hold expired with "pending": ask again at once
    }
    if (response.status === 429 || response.status >= 500) {
      errors = await afterError(opts, errors, response.status, response.headers.get("Retry-After"), log,
                                `HTTP ${response.status}`);
      attempts -= 1;
      continue;
    }
    throw new WaitError(`The server answered HTTP ${response.status}`, response.status);
  }
  log.log(`No final status after ${attempts} attempts; last status: ${body ? body.paymentStatus : "unknown"}`);
  return { final: false, body, attempts, requests };
}

async function afterError(opts, errors, status, retryAfter, log, what) {
  errors += 1;
  if (errors > opts.maxErrors) throw new WaitError(`Giving up after ${errors} errors: ${what}`, status);
  const ceiling = Math.min(opts.backoffMaxMs, opts.backoffBaseMs * 2 ** (errors - 1));
  let delay = Math.random() * ceiling; // full jitter: clients that failed together do not retry together
  const hinted = Number(retryAfter) * 1000;
  if (hinted > 0) delay = Math.max(delay, hinted);
  log.warn(`Long polling: ${what}; retrying in ${Math.round(delay)} ms`);
  await sleep(delay, opts.signal);
  return errors;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal && signal.aborted) return reject(abortReason(signal)); // "abort" fired already: no event will come
    const stop = () => { clearTimeout(timer); reject(abortReason(signal)); };
    const timer = setTimeout(() => { if (signal) signal.removeEventListener("abort", stop); resolve(); }, ms);
    if (signal) signal.addEventListener("abort", stop, { once: true });
  });
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
