// Pins the Gateway API Inference Extension whose InferencePool CRD (inference.networking.k8s.io/v1)
// the local cluster installs for the InferencePool tests (sim/cluster/inference-pool-crd.ts reads the
// version here and takes the CRD from the module's config/crd/bases). Nothing is built from it, so
// `go mod tidy` would drop the requirement: edit this file by hand.
module gpufleet.io/tools/gateway-api-inference-extension

go 1.24.0

require sigs.k8s.io/gateway-api-inference-extension v1.1.0
