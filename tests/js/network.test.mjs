// node --test tests/js/: long-poll.js on bad networks, on a simulated clock (no server, no framework).
// Run from pytest by tests/test_long_poll_js.py.
import { test } from "node:test";
import assert from "node:assert/strict";

import { FakeWaitRoute, fakeBrowser, loadLongPoll, quiet, settled, simulatedClock } from "./fake-network.mjs";

const { waitForPayment } = await loadLongPoll();

/** waitForPayment on the fake route and browser, recording what onNetwork reports. */
function start(route, browser, options = {}) {
  const network = [];
  const waiting = waitForPayment("/api/orders/o1/wait?token=t", {
    fetch: route.fetch, log: quiet, onNetwork: (state) => network.push(state), ...browser, ...options,
  });
  waiting.catch(() => {}); // inspected with settled()
  return { waiting, network };
}

test("without heartbeats, a hold unanswered by its deadline (hold + margin) is aborted and asked again", async (t) => {
  const clock = simulatedClock(t);
  const off = { heartbeatSeconds: 0 };
  for (const [options, deadlineMs] of [[{ ...off, timeoutSeconds: 5 }, 15000], [{ ...off, holdSeconds: 3 }, 13000],
                                       [{ ...off, holdSeconds: 3, deadlineMarginMs: 2000 }, 5000]]) {
    const route = new FakeWaitRoute({ holdMs: 1000 * (options.timeoutSeconds || options.holdSeconds) });
    route.network = "blackhole"; // the held request's connection dies silently: no FIN, no RST
    const { waiting } = start(route, fakeBrowser(), options);
    route.network = "up";
    route.pay();
    await clock.advance(deadlineMs - 100);
    assert.deepEqual(route.calls.map((c) => c.outcome), ["in flight"], JSON.stringify(options));
    await clock.advance(100 + 1000); // the deadline, then at most backoffBaseMs of backoff
    assert.deepEqual(route.calls.map((c) => c.outcome), ["aborted", "completed"]);
    assert.equal((await settled(waiting)).value?.body.paymentStatus, "completed");
    assert.equal(route.maxInFlight, 1);
  }
});

test("the deadline follows the hold the wait URL asks for", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute();
  route.network = "blackhole";
  const waiting = waitForPayment("/api/orders/o1/wait?token=t&timeout=2",
                                 { fetch: route.fetch, log: quiet, heartbeatSeconds: 0, ...fakeBrowser() });
  await clock.advance(11900);
  assert.equal(route.calls[0].outcome, "in flight");
  await clock.advance(100);
  assert.equal(route.calls[0].outcome, "aborted");
  route.network = "up";
  route.pay();
  await clock.advance(1000);
  assert.equal((await waiting).final, true);
});

test("'online' and the page becoming visible cut a backoff short; hiding it does not", async (t) => {
  const clock = simulatedClock(t);
  t.mock.method(Math, "random", () => 0.99); // a backoff of ~59 s
  for (const resume of ["goOnline", "show"]) {
    const route = new FakeWaitRoute();
    const browser = fakeBrowser();
    route.network = "down";
    const { waiting } = start(route, browser, { backoffBaseMs: 60000, backoffMaxMs: 60000 });
    await clock.advance(1000);
    route.network = "up";
    route.pay();
    browser.hide();
    await clock.advance(1000);
    assert.equal(route.calls.length, 1, resume);
    browser[resume]();
    await clock.advance(0, 1); // no simulated time passes
    assert.deepEqual(route.calls.map((c) => c.outcome), ["failed", "completed"], resume);
    assert.equal((await settled(waiting)).value?.final, true);
  }
});

test("a hold that lived through 'offline' or a hidden page is restarted on resume; never two in flight", async (t) => {
  const clock = simulatedClock(t);
  for (const [lose, resume] of [["goOffline", "goOnline"], ["hide", "show"]]) {
    const route = new FakeWaitRoute();
    const browser = fakeBrowser();
    const { waiting } = start(route, browser);
    await clock.advance(1000);
    browser.goOnline(); // a resume with a healthy hold in flight changes nothing
    browser.show();
    await clock.advance(1000);
    assert.deepEqual(route.calls.map((c) => c.outcome), ["in flight"]);
    browser[lose]();
    route.killInFlight(); // the network changed under the held connection
    route.pay();
    await clock.advance(1000);
    assert.equal(route.calls.length, 1);
    browser[resume]();
    await clock.advance(0, 1);
    assert.deepEqual(route.calls.map((c) => c.outcome), ["aborted", "completed"], lose);
    assert.equal((await settled(waiting)).value?.final, true);
    assert.equal(route.maxInFlight, 1);
  }
});

test("a 45 s outage is ridden out by the time budget, where a count of 6 errors gave up", async (t) => {
  const clock = simulatedClock(t);
  const outage = async (options) => {
    const route = new FakeWaitRoute();
    route.network = "down"; // navigator.onLine stays true: the outage is upstream of the phone
    const { waiting } = start(route, fakeBrowser(), options);
    await clock.advance(45000);
    route.network = "up";
    route.pay();
    await clock.advance(15000); // at most backoffMaxMs until the next try
    assert.equal(route.maxInFlight, 1);
    return { result: await settled(waiting), route };
  };
  const ridden = await outage({});
  assert.equal(ridden.result.value?.final, true);
  assert.ok(ridden.route.calls.length > 7, ridden.route.calls.length); // more errors than the old count allowed
  const counted = await outage({ maxErrors: 6, errorBudgetMs: Infinity }); // the old, count-based budget
  assert.equal(counted.result.error?.name, "WaitError");
  assert.equal(counted.route.calls.length, 7);
});

test("errors that last errorBudgetMs while the browser is online reject with a network WaitError", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute();
  route.network = "down";
  const { waiting } = start(route, fakeBrowser());
  await clock.advance(119000);
  assert.equal(await settled(waiting), "pending");
  await clock.advance(16000);
  const { error } = await settled(waiting);
  assert.equal(error?.name, "WaitError");
  assert.equal(error.status, 0);
});

test("a server that only ever answers 'stopping' runs out of the time budget instead of looping", async (t) => {
  const clock = simulatedClock(t);
  let calls = 0;
  const fetch = async () => { calls += 1; return { ok: true, status: 200, headers: new Headers({ "Retry-After": "0" }),
                                                  json: async () => ({ paymentStatus: "pending", final: false }) }; };
  const waiting = waitForPayment("/w", { fetch, log: quiet, errorBudgetMs: 60000 });
  waiting.catch(() => {});
  await clock.advance(60000 + 15000);
  assert.equal((await settled(waiting)).error?.name, "WaitError");
  assert.ok(calls > 4, calls);
});

test("while the browser is offline the budget does not run out, and 'online' resumes at once", async (t) => {
  const clock = simulatedClock(t);
  const route = new FakeWaitRoute();
  const browser = fakeBrowser();
  const { waiting, network } = start(route, browser);
  await clock.advance(1000);
  browser.goOffline();
  route.killInFlight();
  route.network = "down";
  await clock.advance(70000); // the hold's deadline, then backoffs while offline
  await clock.advance(10 * 60 * 1000, 1000);
  assert.equal(await settled(waiting), "pending");
  assert.ok(route.calls.slice(1).every((c) => c.outcome === "failed"));
  route.network = "up";
  route.pay();
  browser.goOnline();
  await clock.advance(0, 1);
  assert.equal((await settled(waiting)).value?.final, true);
  assert.deepEqual(network, ["offline", "online"]);
  assert.equal(route.maxInFlight, 1);
});

test("onNetwork reports each change in order: retrying, offline, online", async (t) => {
  const clock = simulatedClock(t);
  t.mock.method(Math, "random", () => 0.5); // backoffs of 500, 1000, 2000 ms…
  const route = new FakeWaitRoute({ holdMs: 5000 });
  const browser = fakeBrowser();
  route.network = "down";
  const { waiting, network } = start(route, browser);
  await clock.advance(1);
  assert.deepEqual(network, ["retrying"]); // one network error: perhaps a blip
  await clock.advance(1000);
  assert.deepEqual(network, ["retrying", "offline"]); // two in a row: offline, although navigator.onLine is true
  route.network = "up";
  await clock.advance(500 + 5000);
  assert.deepEqual(network, ["retrying", "offline", "online"]); // a hold answered
  browser.goOffline(); // the browser knows at once, during a hold
  assert.deepEqual(network, ["retrying", "offline", "online", "offline"]);
  route.status = 503;
  browser.goOnline(); // restarts the hold; not "online" yet: only an answer says the server is reachable
  assert.deepEqual(network, ["retrying", "offline", "online", "offline"]);
  await clock.advance(0, 1);
  assert.deepEqual(network, ["retrying", "offline", "online", "offline", "retrying"]); // reachable, not ready
  route.status = 200;
  route.pay();
  await clock.advance(1000);
  assert.equal((await settled(waiting)).value?.final, true);
  assert.deepEqual(network, ["retrying", "offline", "online", "offline", "retrying", "online"]);
  assert.deepEqual(route.calls.map((c) => c.outcome), ["failed", "failed", "pending", "aborted", "HTTP 503", "completed"]);
  assert.equal(route.maxInFlight, 1);
});
