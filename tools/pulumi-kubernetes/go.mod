module gpufleet.io/tools/pulumi-kubernetes

go 1.24.7

// The provider module (provider/ of github.com/pulumi/pulumi-kubernetes) has no provider/v4.x tags:
// this pseudo-version is commit f47bc2d6f199, which is the tag v4.25.0 (`git describe`), the same
// release as the npm package @pulumi/kubernetes 4.25.0. The version is stamped at build time.
require github.com/pulumi/pulumi-kubernetes/provider/v4 v4.0.0-20260115033456-f47bc2d6f199

// Mirrors the provider's own `replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => ../sdk`
// (replaces of a dependency are not inherited) with the sdk of the same release.
replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => github.com/pulumi/pulumi-kubernetes/sdk/v4 v4.25.0

tool github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes
