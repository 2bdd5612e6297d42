/*
 * async-orders.js: the browser client of async_orders. No build step, no dependencies.
 *
 * Classic script:  <script src="{% static 'async_orders/async-orders.js' %}"></script>
 *                  then window.AsyncOrders
 * ES module:       import { Client } from ".../async_orders/async-orders.mjs";
 *                  (a three-line wrapper that imports this file and re-exports it)
 *
 * This file is the one source: it runs as a classic script and as a module alike
 * (strict mode, no top-level `this`), and defines globalThis.AsyncOrders either way.
 *
 *   const client = new AsyncOrders.Client();           // baseUrl "/async/", CSRF from the cookie
 *   const order = await client.run("shop:report", { kwargs: { size: 40 } }, {
 *     onProgress: (order) => render(order.progress.percent, order.message),
 *     signal: controller.signal,                       // abort() sends DELETE to the order
 *   });
 *   location.href = order.resource_url;                // completed; else it rejected with
 *                                                      // OrderFailedError / OrderCanceledError
 *
 *   // Several orders at once, all or none; one bar each and one for the whole batch:
 *   const batch = await client.runBatch([{ view: "shop:report", kwargs: { size: 40 } }, ...], {
 *     onProgress: (batch) => render(batch.percent, batch.orders.map((o) => o.percent)),
 *   });                                                // resolves once every order finished
 */
(function (root) {
  "use strict";

  const DEFAULTS = Object.freeze({
    baseUrl: "/async/",
    csrfCookieName: "csrftoken",
    csrfHeaderName: "X-CSRFToken",
    interval: 500, // ms before the first poll without Retry-After; grows by `backoff`
    maxInterval: 30000, // ms: the longest wait between two polls, Retry-After included
    backoff: 1.5,
    // Seconds a poll may wait on the server for the next change (`?wait=`), when the
    // server offers it (its answers carry an ETag); 0 polls on Retry-After only.
    longPoll: 20,
    headers: {}, // sent with every request, e.g. { Authorization: "Token ..." }
    credentials: "same-origin",
    fetch: null, // a fetch() to use instead of the global one
  });
  const FINISHED = ["completed", "failed", "canceled"];
  const UNSAFE = ["POST", "PUT", "PATCH", "DELETE"];
  // Answers to a poll that mean "not now" rather than "no": wait and ask again.
  const RETRY_STATUSES = [429, 502, 503, 504];

  /** An endpoint answered with an error body: {"code": ..., "detail": ...}. */
  class HttpError extends Error {
    constructor(response, body) {
      const code = (body && body.code) || "http_error";
      const detail = (body && body.detail) || response.statusText;
      super(`${response.status} ${code}: ${detail}`);
      this.name = "HttpError";
      this.status = response.status;
      this.code = code;
      this.detail = detail;
      this.body = body;
    }
  }

  /** The order did not complete: `order` is its last state, `error` its error. */
  class OrderError extends Error {
    constructor(order) {
      super((order.error && order.error.message) || `The order was ${order.status}.`);
      this.name = "OrderError";
      this.order = order;
      this.error = order.error;
    }
  }

  /** The view answered 4xx/5xx or raised; `error` has code, message, status_code, body. */
  class OrderFailedError extends OrderError {
    constructor(order) {
      super(order);
      this.name = "OrderFailedError";
    }
  }

  /** The order was canceled: through the AbortSignal, or by someone else. */
  class OrderCanceledError extends OrderError {
    constructor(order) {
      super(order);
      this.name = "OrderCanceledError";
    }
  }

  // What _follow needs to know of what it follows: when it is over, and what that means.
  const ORDER = { done: (order) => FINISHED.includes(order.status), settle: (o) => settle(o) };
  const BATCH = { done: (batch) => batch.finished, settle: (batch) => batch };

  /** Milliseconds before the next poll: Retry-After (seconds) when the server sent it,
   * else `interval * backoff ** attempt`; never more than `maxInterval`. */
  function pollDelay(retryAfter, attempt, options) {
    const { interval, maxInterval, backoff } = { ...DEFAULTS, ...options };
    const seconds = retryAfter === null || retryAfter === undefined || retryAfter === ""
      ? NaN
      : Number(retryAfter);
    const ms = Number.isFinite(seconds) ? Math.max(seconds, 0) * 1000 : interval * backoff ** attempt;
    return Math.min(ms, maxInterval);
  }

  class Client {
    constructor(options = {}) {
      this.options = { ...DEFAULTS, ...options };
    }

    /** Place an order and follow its 302; resolves with the order as first polled. */
    async place(viewName, envelope = {}, { signal, idempotencyKey } = {}) {
      const { order } = await this._place(viewName, envelope, { signal, idempotencyKey });
      return order;
    }

    /** Place an order and wait for it: resolves with the completed order. */
    async run(viewName, envelope = {}, options = {}) {
      const placed = await this._place(viewName, envelope, options);
      return this._follow(placed, options);
    }

    /** Wait for an order (an order object or its URL) to finish. */
    async wait(order, options = {}) {
      const url = urlOf(order);
      return this._follow(await this._poll(url, options.signal), options);
    }

    /** The order's current state, polled once. */
    async get(order, { signal } = {}) {
      return (await this._poll(urlOf(order), signal)).order;
    }

    /** DELETE the order: 200 canceled at once, 202 still running but asked to stop. */
    async cancel(order) {
      const response = await this._fetch(urlOf(order), { method: "DELETE" });
      const body = await readJson(response);
      if (response.status !== 200 && response.status !== 202) throw new HttpError(response, body);
      return body;
    }

    /** Place several orders at once, all or none: each `{view, ...envelope}`. Resolves
     * with the batch as first polled; an invalid order rejects with HttpError
     * `invalid_batch`, whose `body.fields` names `orders.<index>.<field>`. */
    async placeBatch(orders, { signal } = {}) {
      return (await this._post(`${this.options.baseUrl}batches/`, { orders }, { signal })).order;
    }

    /** Place a batch and follow it until every order finished, however each ended:
     * resolves with the batch (see its `counts`). `onProgress` gets each new state;
     * aborting `signal` cancels the batch's unfinished orders. */
    async runBatch(orders, options = {}) {
      const placed = await this._post(`${this.options.baseUrl}batches/`, { orders }, options);
      return this._follow(placed, options, BATCH);
    }

    /** Wait for a batch (a batch object or its URL) until every order finished. */
    async waitBatch(batch, options = {}) {
      return this._follow(await this._poll(urlOf(batch), options.signal), options, BATCH);
    }

    /** DELETE the batch: cancels its unfinished orders; resolves with the batch. */
    async cancelBatch(batch) {
      return this.cancel(batch);
    }

    /** Place a failed or canceled order again (same envelope): resolves with the new
     * order as first polled; its `rerun_of` is the old order's URL. */
    async rerun(order, { signal, idempotencyKey } = {}) {
      const placed = await this._post(`${urlOf(order)}rerun/`, undefined, { signal, idempotencyKey });
      return placed.order;
    }

    /** The order's attempts, oldest first: number, started_at, finished_at, worker,
     * outcome, error. */
    async attempts(order, { signal } = {}) {
      const response = await this._fetch(`${urlOf(order)}attempts/`, { signal });
      const body = await readJson(response);
      if (response.status !== 200) throw new HttpError(response, body);
      return body;
    }

    delay(retryAfter, attempt) {
      return pollDelay(retryAfter, attempt, this.options);
    }

    async _place(viewName, envelope, options = {}) {
      const name = encodeURIComponent(viewName).replace(/%3A/gi, ":");
      const url = `${this.options.baseUrl}${name}/order/`;
      return this._post(url, envelope, options);
    }

    /** POST to an endpoint that places an order (or a batch) and answers 302 to it. */
    async _post(url, body, { signal, idempotencyKey } = {}) {
      const headers = { "Content-Type": "application/json" };
      if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
      // fetch follows the 302 with a GET: the answer is the first poll.
      const response = await this._fetch(url, {
        method: "POST", headers, body: JSON.stringify(body), signal,
      });
      const order = await readJson(response);
      if (!response.redirected || response.status >= 400) throw new HttpError(response, order);
      return { url: response.url || order.url, response, order };
    }

    /** GET the order; with `etag`, a 304 answers "unchanged" (and carries no order). */
    async _poll(url, signal, etag = null) {
      const headers = etag ? { "If-None-Match": etag } : {};
      for (let attempt = 0; ; attempt += 1) {
        const response = await this._fetch(url, { signal, headers });
        if (response.status === 304) return { url, response, order: null };
        if (!RETRY_STATUSES.includes(response.status)) {
          const order = await readJson(response);
          if (![200, 201, 202].includes(response.status)) throw new HttpError(response, order);
          return { url, response, order };
        }
        await sleep(this.delay(response.headers.get("Retry-After"), attempt), signal);
      }
    }

    async _follow({ url, response, order }, { onProgress, signal } = {}, kind = ORDER) {
      let etag = null; // the state this client has, as the server names it
      let changed = true; // the last answer brought a new state (not a 304)
      let took = 0; // ms the last poll took
      try {
        for (let attempt = 0; ; attempt += 1) {
          if (changed) {
            etag = response.headers.get("ETag");
            if (onProgress) onProgress(order);
            if (kind.done(order)) return kind.settle(order);
          }
          const longPoll = this.options.longPoll > 0 && etag !== null;
          // Long-polling: ask again at once after a change or a real wait; otherwise
          // honour Retry-After, so a server that ignores ?wait= is never polled in a loop.
          if (!longPoll || !(changed || took >= this.options.longPoll * 500)) {
            await sleep(this.delay(response.headers.get("Retry-After"), attempt), signal);
          }
          const asked = Date.now();
          const next = longPoll
            ? await this._poll(withWait(url, this.options.longPoll), signal, etag)
            : await this._poll(url, signal);
          took = Date.now() - asked;
          changed = next.response.status !== 304;
          response = next.response;
          if (changed) order = next.order;
        }
      } catch (error) {
        if (!(signal && signal.aborted)) throw error;
        return this._abort(url, onProgress, kind);
      }
    }

    /** The caller aborted: cancel the order (the batch), and settle by what it became. */
    async _abort(url, onProgress, kind) {
      const response = await this._fetch(url, { method: "DELETE" });
      const order = await readJson(response);
      if (response.status === 200 && kind === ORDER) throw new OrderCanceledError(order);
      if ([200, 202, 409].includes(response.status)) {
        // Finished meanwhile, or running until its next progress step: follow it
        // (without the aborted signal) to the state it really ends in.
        return this._follow(await this._poll(url), { onProgress }, kind);
      }
      throw new HttpError(response, order);
    }

    _fetch(url, { method = "GET", headers = {}, body, signal } = {}) {
      const all = { Accept: "application/json", ...this.options.headers, ...headers };
      const token = UNSAFE.includes(method) ? readCookie(this.options.csrfCookieName) : null;
      if (token) all[this.options.csrfHeaderName] = token;
      const fetchImpl = this.options.fetch || root.fetch.bind(root);
      return fetchImpl(url, {
        method, headers: all, body, signal, credentials: this.options.credentials, redirect: "follow",
      });
    }
  }

  function settle(order) {
    if (order.status === "failed") throw new OrderFailedError(order);
    if (order.status === "canceled") throw new OrderCanceledError(order);
    return order;
  }

  function withWait(url, seconds) {
    return `${url}${url.includes("?") ? "&" : "?"}wait=${seconds}`;
  }

  function urlOf(order) {
    return typeof order === "string" ? order : order.url;
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (error) {
      return null;
    }
  }

  function readCookie(name) {
    if (typeof document === "undefined" || !document.cookie) return null;
    for (const pair of document.cookie.split(";")) {
      const [key, ...value] = pair.trim().split("=");
      if (key === name) return decodeURIComponent(value.join("="));
    }
    return null;
  }

  function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const timer = setTimeout(() => {
        if (signal) signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      if (signal) signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Shortcut: `new Client(options).run(viewName, envelope, options)`. */
  function run(viewName, envelope, options = {}) {
    return new Client(options).run(viewName, envelope, options);
  }

  root.AsyncOrders = Object.freeze({
    Client,
    run,
    pollDelay,
    DEFAULTS,
    HttpError,
    OrderError,
    OrderFailedError,
    OrderCanceledError,
  });
})(globalThis);
