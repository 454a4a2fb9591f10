/** Engine metrics collection: exposition parsing, per-engine normalization, pod scraping, Prometheus API source. */
export * from "./engines.js";
export * from "./exposition.js";
export * from "./prometheus-source.js";
export * from "./scrape.js";
export * from "./owned-pods.js";
