/**
 * The gateway's environment for a cluster test: it watches the test's namespace and serves both its
 * listeners on loopback at ephemeral ports; `extra` sets what the test is about.
 */
export function loopbackGatewayEnv(
  namespace: string,
  podName: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    GPUFLEET_GATEWAY_WATCH_NAMESPACES: namespace,
    GPUFLEET_GATEWAY_HOST: "127.0.0.1",
    GPUFLEET_GATEWAY_PORT: "0",
    GPUFLEET_GATEWAY_OPS_HOST: "127.0.0.1",
    GPUFLEET_GATEWAY_OPS_PORT: "0",
    POD_NAME: podName,
    ...extra,
  };
}
