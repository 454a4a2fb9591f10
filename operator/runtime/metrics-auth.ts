/**
 * Authentication and authorization of /metrics by the API server, the way kube-rbac-proxy does it: the
 * caller's bearer token goes to a TokenReview (who is this?), the user it names to a SubjectAccessReview
 * for the non-resource URL (may they `get /metrics`?). Grant it with a ClusterRole such as
 * `rules: [{nonResourceURLs: ["/metrics"], verbs: ["get"]}]` (the chart ships one). Answers are cached
 * briefly, by a hash of the token, in a bounded map, so a scrape every few seconds costs no API calls.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { KubeClient } from "./kube-client.js";

export type AuthDecision = { allowed: true; user: string } | { allowed: false; status: 401 | 403; reason: string };

export type RequestAuthorizer = (req: IncomingMessage, path: string) => Promise<AuthDecision>;

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

export interface KubeAuthorizerOptions {
  /** How long an answer (allowed or denied) is reused; default 10 s. */
  cacheTtlMs?: number;
  /** Tokens remembered at most; default 256. */
  cacheSize?: number;
  now?: () => number;
}

/** A RequestAuthorizer backed by TokenReview + SubjectAccessReview through `client`. */
export function kubeRequestAuthorizer(client: KubeClient, options: KubeAuthorizerOptions = {}): RequestAuthorizer {
  const ttl = options.cacheTtlMs ?? 10_000;
  const size = options.cacheSize ?? 256;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { decision: AuthDecision; expires: number }>();

  const decide = async (token: string, path: string): Promise<AuthDecision> => {
    const review = await client.request<{ status?: TokenReviewStatus }>("POST", "/apis/authentication.k8s.io/v1/tokenreviews", {
      body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
    });
    const user = review.status?.user;
    if (!review.status?.authenticated || !user?.username) return { allowed: false, status: 401, reason: "token not authenticated" };
    const access = await client.request<{ status?: { allowed?: boolean } }>("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.groups ? { groups: user.groups } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          nonResourceAttributes: { path, verb: "get" },
        },
      },
    });
    return access.status?.allowed === true
      ? { allowed: true, user: user.username }
      : { allowed: false, status: 403, reason: `${user.username} may not get ${path}` };
  };

  return async (req, path) => {
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(\S{1,8192})$/i.exec(header);
    if (!match) return { allowed: false, status: 401, reason: "a bearer token is required" };
    const key = createHash("sha256").update(`${path}\u0000${match[1]}`).digest("hex");
    const cached = cache.get(key);
    if (cached && cached.expires > now()) return cached.decision;
    const decision = await decide(match[1] as string, path);
    cache.delete(key);
    cache.set(key, { decision, expires: now() + ttl });
    // Oldest first: a Map iterates in insertion order.
    while (cache.size > size) cache.delete(cache.keys().next().value as string);
    return decision;
  };
}
