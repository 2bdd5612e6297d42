// async-orders.mjs: the ES module face of async-orders.js, which is the one source.
// Importing it runs that file once (it defines globalThis.AsyncOrders) and re-exports it.
import "./async-orders.js";

const AsyncOrders = globalThis.AsyncOrders;
export const {
  Client,
  run,
  pollDelay,
  DEFAULTS,
  HttpError,
  OrderError,
  OrderFailedError,
  OrderCanceledError,
} = AsyncOrders;
export default AsyncOrders;
