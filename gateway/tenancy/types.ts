/**
 * What the gateway knows about the caller once tenancy has admitted a request.
 * Produced by gateway/tenancy (authentication + tier); consumed by the hold queue
 * (priority, fairnessKey) and by model resolution (allowedModels).
 *
 * Anonymous access (chart setting, off by default) yields a TenantContext whose
 * tenant is "anonymous". With tenancy disabled, callers use priority 0 and fairnessKey "".
 */
export interface TenantContext {
  /** "namespace/name" of the Tenant object, or "anonymous". */
  readonly tenant: string;
  /** Name of the cluster-scoped UsageTier the tenant is on. */
  readonly tier: string;
  /** Priority band; higher is served first. */
  readonly priority: number;
  /** Key the hold queue uses to share a band fairly between tenants. */
  readonly fairnessKey: string;
  /** Longest wait in the hold queue (the tier's maxQueueWaitMs); undefined: the band's or the gateway's. */
  readonly maxWaitMs?: number;
  /** Models or model aliases the tenant may call; undefined = any. */
  readonly allowedModels?: readonly string[];
  /**
   * Admitted over a tier limit because the tier's overLimit is Sheddable: `priority` is then -1, below
   * every tier, so the hold queue sheds it first. Absent: within limits.
   */
  readonly overLimit?: boolean;
}

export const ANONYMOUS_TENANT = "anonymous";
