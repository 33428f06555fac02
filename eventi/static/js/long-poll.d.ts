// Types of long-poll.js (@eventi/long-poll). The interface is described in docs/frontend.md.

/** "offline" | "retrying" | "online": reported to onNetwork on each change. */
export type NetworkState = "offline" | "retrying" | "online";

/** The wait route's answer (GET /api/orders/<id>/wait); fields the server adds later are kept. */
export interface WaitBody {
  orderId: string;
  reference?: string;
  paymentStatus: "pending" | "completed" | "failed" | "cancelled" | "refund_needed" | (string & {});
  amount: number;
  updatedAt?: string;
  final: boolean;
  waitedMs: number;
  promptExpiresAt?: string;
  pushState?: "uncertain";
  mpesaReceipt?: string;
  failureReason?: string;
  reason?: string;
  reasonText?: string;
  [field: string]: unknown;
}

export interface WaitResult {
  /** true: body is final (completed, failed, cancelled, refund_needed, or any status the server calls final). */
  final: boolean;
  /** The last answer: final, or the last pending one (null if no hold was ever answered). */
  body: WaitBody | null;
  /** Holds answered (errors and "server stopping" answers do not count). */
  attempts: number;
  /** Requests sent in all. */
  requests: number;
}

export interface WaitOptions {
  /** Holds answered "pending" back to back (default 4); then the slow cadence, or the end. */
  maxAttempts?: number;
  /** Keep listening this long from the call (default 0: stop after maxAttempts holds). */
  listenSeconds?: number;
  /** The pause before each hold after the first maxAttempts, jittered ±10 % (default 60000). */
  slowPauseMs?: number;
  /** Ask the server for a heartbeat this often, as ?heartbeat= (default 5; 0: none). */
  heartbeatSeconds?: number;
  /** No byte for this long ends a request as dead (default: 2 heartbeats + 1 s). */
  silenceMs?: number;
  /** Hold per request, sent as ?timeout= (default: the server's). */
  timeoutSeconds?: number;
  /** The server's hold when neither timeoutSeconds nor the URL's timeout= says (default 60). */
  holdSeconds?: number;
  /** Deadline per hold = its length + this (default 10000). */
  deadlineMarginMs?: number;
  /** Keep retrying while errors have lasted less than this, the browser online (default 120000). */
  errorBudgetMs?: number;
  /** Optional cap on the number of errors in all (default Infinity). */
  maxErrors?: number;
  /** Network errors in a row reported as "offline" even if navigator.onLine is true (default 2). */
  offlineAfterErrors?: number;
  /** The first backoff ceiling, doubled per error (default 1000). */
  backoffBaseMs?: number;
  /** The backoff ceiling's cap (default 15000). */
  backoffMaxMs?: number;
  /** Abort the wait (React effect cleanup): the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called before each hold with its number. */
  onAttempt?: (attempt: number) => void;
  /** Called on each change of the network's state. */
  onNetwork?: (state: NetworkState) => void;
  /** Called once, when the fast holds are over and the slow cadence begins. */
  onSlow?: () => void;
  /** Where progress lines go (default console); null: nowhere. */
  log?: Pick<Console, "log" | "warn"> | null;
  /** A fetch implementation (tests). */
  fetch?: typeof fetch;
  /** Where online/offline/focus come from (tests); null: none. */
  window?: EventTarget | null;
  /** Where visibilitychange comes from (tests); null: none. */
  document?: (EventTarget & { visibilityState: DocumentVisibilityState | string }) | null;
  /** Where onLine is read (tests); null: always online. */
  navigator?: { onLine: boolean } | null;
}

/** Rejected with on a 4xx other than 429, or once the error budget is spent. */
export class WaitError extends Error {
  constructor(message: string, status: number, code?: string | null);
  readonly name: "WaitError";
  /** The HTTP status, or 0 for a network error. */
  status: number;
  /** The error body's `error` code (application/json or application/problem+json), when there was one. */
  code: string | null;
}

/** Wait for an order's final payment status with as few requests as possible; at most one in flight. */
export function waitForPayment(waitUrl: string, options?: WaitOptions): Promise<WaitResult>;
