/** The operator runtime: REST client, informers, work queue, leader election, events, metrics, ops server. */
export * from "./kube-client.js";
export * from "./informer.js";
export * from "./workqueue.js";
export * from "./leader.js";
export * from "./events.js";
export * from "./metrics.js";
export * from "./ops-server.js";
