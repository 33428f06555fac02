// node --test tests/js/: long-poll.js's heartbeat watchdog and its slow cadence, on a simulated clock.
// Run from pytest by tests/test_long_poll_js.py.
import { test } from "node:test";
import assert from "node:assert/strict";

import { COMPLETED, FakeWaitRoute, answer, fakeBrowser, loadLongPoll, quiet, settled, simulatedClock } from "./fake-network.mjs";

const { waitForPayment } = await loadLongPoll();

function start(route, browser, options = {}) {
  const network = [];
  const waiting = waitForPayment("/api/orders/o1/wait?token=t", {
    fetch: route.fetch, log: quiet, onNetwork: (state) => network.push(state), ...browser, ...options,
  });
  waiting.catch(() => {});
  return { waiting, network };
}

// --- The watchdog: a streamed hold with no byte for two heartbeats is dead -------------------------------

test("heartbeats keep a healthy hold open to its end: one request per hold", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute({ holdMs: 60000 });
  start(route, fakeBrowser());
  await clock.advance(59000, 500);
  assert.deepEqual(route.calls.map((c) => c.outcome), ["in flight"]);
  assert.match(route.calls[0].url, /[?&]heartbeat=5(&|$)/);
  await clock.advance(2000, 500);
  assert.deepEqual(route.calls.map((c) => c.outcome), ["pending", "in flight"]);
});

test("a held connection that goes silent is aborted after two heartbeats and asked again over a new request", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute({ holdMs: 60000 });
  const { waiting } = start(route, fakeBrowser());
  await clock.advance(7000, 500);
  route.killInFlight(); // the connection dies silently: no FIN, no RST, no more heartbeats
  route.pay();          // paid while the page cannot hear it
  await clock.advance(5000, 500);
  assert.deepEqual(route.calls.map((c) => c.outcome), ["in flight"]); // one missed heartbeat is not yet death
  await clock.advance(10000, 500); // two heartbeats and a second of silence, then at most backoffBaseMs
  assert.deepEqual(route.calls.map((c) => c.outcome), ["aborted", "completed"]);
  assert.equal((await settled(waiting)).value?.body.paymentStatus, "completed");
  assert.equal(route.maxInFlight, 1);
});

test("when every connection is silent the page hears 'offline' within 30 s, and recovers when the network returns", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute({ holdMs: 60000 });
  const { waiting, network } = start(route, fakeBrowser());
  await clock.advance(2000, 500);
  route.network = "blackhole"; // new requests vanish too
  route.killInFlight();
  await clock.advance(28000, 500);
  assert.equal(network.at(-1), "offline");
  assert.ok(route.calls.every((c) => c.outcome !== "in flight" || c === route.calls.at(-1)));
  assert.ok(route.calls.slice(0, -1).every((c) => c.outcome === "aborted")); // each silent request was ended
  route.network = "up";
  route.pay();
  await clock.advance(30000, 500);
  assert.equal((await settled(waiting)).value?.body.paymentStatus, "completed");
  assert.equal(network.at(-1), "online");
  assert.equal(route.maxInFlight, 1);
});

test("a server error after a streamed 200 started is retried, like a 503", async (t) => {
  const clock = simulatedClock(t);
  const answers = [answer({ error: "store_unavailable", message: "…", retryAfter: 1 }), answer(COMPLETED)];
  let calls = 0;
  const fetch = async () => { calls += 1; return answers.shift(); };
  const waiting = waitForPayment("/w", { fetch, log: quiet, ...fakeBrowser() });
  await clock.advance(1500);
  assert.equal((await settled(waiting)).value?.body.paymentStatus, "completed");
  assert.equal(calls, 2);
});

test("a 404 in problem+json rejects with its code", async () => {
  const problem = { type: "about:blank", title: "Not Found", status: 404, error: "not_found", message: "No such order" };
  const fetch = async () => answer(problem, { "Content-Type": "application/problem+json" }, 404);
  await assert.rejects(waitForPayment("/w", { fetch, log: quiet }), { name: "WaitError", status: 404, code: "not_found" });
});

test("log: null silences it", async (t) => {
  const logged = t.mock.method(console, "log", () => {});
  const warned = t.mock.method(console, "warn", () => {});
  const answers = [answer({}, {}, 503), answer(COMPLETED)];
  const fetch = async () => answers.shift();
  await waitForPayment("/w", { fetch, log: null, backoffBaseMs: 1, backoffMaxMs: 1 });
  assert.equal(logged.mock.callCount() + warned.mock.callCount(), 0);
});

// --- The slow cadence: after maxAttempts holds, one hold per slowPauseMs until listenSeconds ------------

test("after the fast holds it keeps listening at a slower cadence until listenSeconds, then stops", async (t) => {
  const clock = simulatedClock(t);
  t.mock.method(Math, "random", () => 0.5); // pauses of exactly slowPauseMs
  const route = new FakeWaitRoute({ holdMs: 60000 });
  let slow = 0;
  const { waiting } = start(route, fakeBrowser(), { maxAttempts: 2, listenSeconds: 600, onSlow: () => { slow += 1; } });
  await clock.advance(121000, 1000);
  assert.deepEqual(route.calls.map((c) => c.outcome), ["pending", "pending"]); // paused: nothing in flight
  assert.equal(slow, 1);
  await clock.advance(60000, 1000);
  assert.deepEqual(route.calls.map((c) => c.outcome), ["pending", "pending", "in flight"]);
  await clock.advance(600000 - 181000, 1000);
  const { value } = await settled(waiting);
  assert.equal(value?.final, false);
  const requests = route.calls.length;
  assert.ok(requests < 2 + 480 / 60, requests); // slower than back to back
  await clock.advance(300000, 1000);
  assert.equal(route.calls.length, requests); // stopped means no request
  assert.equal(slow, 1);
});

test("a payment during a pause shows at the next hold; 'online', focus and a shown page end the pause", async (t) => {
  const clock = simulatedClock(t);
  for (const resume of [null, "goOnline", "focus", "show"]) {
    const route = new FakeWaitRoute({ holdMs: 60000 });
    const browser = fakeBrowser();
    const { waiting } = start(route, browser, { maxAttempts: 1, listenSeconds: 3600 });
    await clock.advance(61000, 1000);
    assert.equal(route.calls.length, 1, String(resume));
    route.pay();
    if (resume === "focus") browser.window.dispatchEvent(new Event("focus"));
    else if (resume === "show") { browser.hide(); browser.show(); }
    else if (resume) browser[resume]();
    await clock.advance(resume ? 0 : 70000, 1000);
    assert.equal((await settled(waiting)).value?.body.paymentStatus, "completed", String(resume));
    assert.equal(route.calls.length, 2);
  }
});

test("without listenSeconds it stops after maxAttempts holds, as before", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute({ holdMs: 60000 });
  const { waiting } = start(route, fakeBrowser(), { maxAttempts: 2 });
  await clock.advance(121000, 1000);
  assert.deepEqual([(await settled(waiting)).value?.final, route.calls.length], [false, 2]);
});

test("in the slow cadence a hold restarted by 'online' is asked again at once, not after a pause", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute({ holdMs: 60000 });
  const browser = fakeBrowser();
  const { waiting } = start(route, browser, { maxAttempts: 1, listenSeconds: 3600 });
  await clock.advance(61000 + 66000, 1000); // the fast hold, the pause: the second hold is in flight
  assert.deepEqual(route.calls.map((c) => c.outcome), ["pending", "in flight"]);
  browser.goOffline();
  route.killInFlight();
  route.pay();
  browser.goOnline();
  await clock.advance(0, 1);
  assert.equal((await settled(waiting)).value?.body.paymentStatus, "completed");
  assert.deepEqual(route.calls.map((c) => c.outcome), ["pending", "aborted", "completed"]);
});
