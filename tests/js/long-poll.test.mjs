// node --test tests/js/: long-poll.js against a fake fetch (no server, no framework).
// Run from pytest by tests/test_long_poll_js.py.
import { test } from "node:test";
import assert from "node:assert/strict";

import { loadLongPoll } from "./fake-network.mjs";

const { waitForPayment } = await loadLongPoll();

const PENDING = { orderId: "o1", paymentStatus: "pending", amount: 1500, final: false, waitedMs: 60000 };
const STOPPING = { ...PENDING, waitedMs: 12 };
const COMPLETED = { orderId: "o1", paymentStatus: "completed", amount: 1500, mpesaReceipt: "R1", final: true, waitedMs: 40 };

function answer(body, headers = {}, status = 200) {
  return { ok: status >= 200 && status < 300, status, headers: new Headers(headers), json: async () => body };
}

/** A fetch that gives the answers in order and records each call. */
function fakeFetch(answers) {
  const calls = [];
  const fetch = async (url) => {
    calls.push(url);
    if (!answers.length) throw new Error("no more answers");
    return answers.shift();
  };
  return { fetch, calls };
}

const quiet = { log() {}, warn() {} };
const fast = { log: quiet, backoffBaseMs: 1, backoffMaxMs: 1 };

test("a pending answer cut short by a stopping server is not a hold", async () => {
  const { fetch, calls } = fakeFetch([answer(STOPPING, { "Retry-After": "0" }), answer(COMPLETED)]);
  const result = await waitForPayment("/api/orders/o1/wait?token=t", { ...fast, fetch, maxAttempts: 1 });
  assert.equal(result.final, true);
  assert.equal(result.body.paymentStatus, "completed");
  assert.equal(result.attempts, 1);
  assert.equal(calls.length, 2);
});

test("the server's final decides, whatever the status: refund_needed ends the wait in one hold", async () => {
  const refund = { ...COMPLETED, paymentStatus: "refund_needed", reason: "sold_out_after_payment", reasonText: "…" };
  const { fetch, calls } = fakeFetch([answer(refund), answer(COMPLETED)]);
  const result = await waitForPayment("/w", { ...fast, fetch });
  assert.deepEqual([result.final, result.body.paymentStatus, result.attempts, calls.length],
                   [true, "refund_needed", 1, 1]);
});

test("two reloads during one checkout leave every hold to the page", async () => {
  const stop = () => answer(STOPPING, { "Retry-After": "0" });
  const answers = [answer(PENDING), stop(), answer(PENDING), stop(), answer(PENDING), answer(PENDING)];
  const { fetch, calls } = fakeFetch(answers);
  const result = await waitForPayment("/w", { ...fast, fetch, maxAttempts: 4 });
  assert.deepEqual([result.final, result.attempts, result.requests, calls.length], [false, 4, 6, 6]);
});

test("a hold that runs out counts, and the page gives up after maxAttempts of them", async () => {
  const { fetch, calls } = fakeFetch([answer(PENDING), answer(PENDING), answer(COMPLETED)]);
  const result = await waitForPayment("/w", { ...fast, fetch, maxAttempts: 2 });
  assert.deepEqual([result.final, result.attempts, calls.length], [false, 2, 2]);
});

test("a server that only ever answers 'stopping' exhausts the error budget instead of looping", async () => {
  const { fetch, calls } = fakeFetch(Array.from({ length: 20 }, () => answer(STOPPING, { "Retry-After": "0" })));
  await assert.rejects(waitForPayment("/w", { ...fast, fetch, maxErrors: 3 }), { name: "WaitError" });
  assert.equal(calls.length, 4);
});

// --- Aborting: the promise rejects at once with the signal's reason, whatever the client is doing ---------

/** Settles within the current turn (microtasks) or reports "still pending": no clock involved. */
async function settledNow(promise) {
  const marker = {};
  const outcome = promise.then((value) => ({ value }), (error) => ({ error }));
  const result = await Promise.race([outcome, new Promise((resolve) => setImmediate(() => resolve(marker)))]);
  return result === marker ? "pending" : result;
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

test("an abort during a Retry-After backoff rejects at once, without another request", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] }); // the 5 s backoff never ends by itself
  const controller = new AbortController();
  const backoffStarted = deferred();
  const { fetch, calls } = fakeFetch([answer({ error: "store_unavailable" }, { "Retry-After": "5" }, 503), answer(COMPLETED)]);
  const waiting = waitForPayment("/w", { fetch, signal: controller.signal, log: { log() {}, warn: backoffStarted.resolve } });
  await backoffStarted.promise;
  controller.abort(new Error("left the page"));
  const result = await settledNow(waiting);
  assert.equal(result.error?.message, "left the page");
  assert.equal(calls.length, 1);
});

test("an abort while a fetch that ignores the signal is in flight rejects when it answers, with no backoff", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const controller = new AbortController();
  const inFlight = deferred();
  let calls = 0;
  const fetch = () => { calls += 1; return inFlight.promise; };
  const waiting = waitForPayment("/w", { fetch, signal: controller.signal, log: quiet });
  controller.abort(new Error("unmounted"));
  inFlight.resolve(answer({ error: "store_unavailable" }, { "Retry-After": "5" }, 503));
  const result = await settledNow(waiting);
  assert.equal(result.error?.message, "unmounted");
  assert.equal(calls, 1);
});

test("an already aborted signal sends no request", async () => {
  const { fetch, calls } = fakeFetch([answer(COMPLETED)]);
  const controller = new AbortController();
  controller.abort(new Error("gone"));
  await assert.rejects(waitForPayment("/w", { ...fast, fetch, signal: controller.signal }), { message: "gone" });
  assert.equal(calls.length, 0);
});

test("a pending hold answered after an abort does not start the next hold", async () => {
  const controller = new AbortController();
  const inFlight = deferred();
  let calls = 0;
  const fetch = () => { calls += 1; return inFlight.promise; };
  const waiting = waitForPayment("/w", { ...fast, fetch, signal: controller.signal });
  controller.abort(new Error("closed"));
  inFlight.resolve(answer(PENDING));
  await assert.rejects(waiting, { message: "closed" });
  assert.equal(calls, 1);
});
