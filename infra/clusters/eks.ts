/**
 * `EksGpuCluster`: an EKS cluster for gpufleet in one AWS region: its own VPC (public subnets for
 * load balancers, private subnets for nodes, one NAT gateway), a small CPU node group for the
 * operator and system pods, and one managed node group per GPU pool on the EKS-optimized
 * Amazon Linux 2023 NVIDIA AMI (driver and container toolkit preinstalled: amiType
 * `AL2023_x86_64_NVIDIA`, docs.aws.amazon.com/eks/latest/APIReference/API_Nodegroup.html).
 */
import * as aws from "@pulumi/aws";
import * as eks from "@pulumi/eks";
import * as pulumi from "@pulumi/pulumi";
import { cloudTaintEffect, type GpuNodePoolSpec } from "./node-pools.js";

export const EKS_GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA";
export const EKS_CPU_AMI_TYPE = "AL2023_x86_64_STANDARD";

export interface EksGpuClusterArgs {
  /** AWS region, e.g. us-east-1. */
  region: string;
  /** Kubernetes version, e.g. "1.33". */
  kubernetesVersion?: string;
  /** VPC CIDR; /16 split into /20 subnets. Default 10.0.0.0/16 (private address space, never dialled). */
  vpcCidr?: string;
  /** Availability zones to spread over (default 2). */
  availabilityZoneCount?: number;
  gpuPools: GpuNodePoolSpec[];
  /** CPU node group for the operator and system pods. */
  systemPool?: { instanceType?: string; nodes?: number };
  tags?: Record<string, string>;
}

/** The /20 subnet `index` of a /16 CIDR (pure). */
export function subnetCidr(vpcCidr: string, index: number): string {
  const [address = "", prefix = ""] = vpcCidr.split("/");
  if (prefix !== "16") throw new Error(`vpcCidr must be a /16, got ${vpcCidr}`);
  const [first, second] = address.split(".");
  if (index < 0 || index > 15) throw new Error(`subnet index ${index} out of range 0..15`);
  return `${first}.${second}.${index * 16}.0/20`;
}

export class EksGpuCluster extends pulumi.ComponentResource {
  readonly cluster: eks.Cluster;
  readonly gpuNodeGroups: eks.ManagedNodeGroup[];
  readonly kubeconfig: pulumi.Output<string>;
  readonly vpcId: pulumi.Output<string>;

  constructor(name: string, args: EksGpuClusterArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gpufleet:clusters:EksGpuCluster", name, {}, opts);
    const provider = new aws.Provider(`${name}-aws`, { region: args.region as aws.Region }, { parent: this });
    const child = { parent: this, provider };
    const tags = { "gpufleet.io/cluster": name, ...args.tags };
    const vpcCidr = args.vpcCidr ?? "10.0.0.0/16";
    const zoneCount = args.availabilityZoneCount ?? 2;

    const zones = aws.getAvailabilityZonesOutput({ state: "available" }, { parent: this, provider });
    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      { cidrBlock: vpcCidr, enableDnsHostnames: true, enableDnsSupport: true, tags },
      child,
    );
    const gateway = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags }, child);
    const publicRoutes = new aws.ec2.RouteTable(
      `${name}-public`,
      { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", gatewayId: gateway.id }], tags },
      child,
    );
    const publicSubnets: aws.ec2.Subnet[] = [];
    const privateSubnets: aws.ec2.Subnet[] = [];
    for (let zone = 0; zone < zoneCount; zone++) {
      const availabilityZone = zones.names.apply((names) => {
        const picked = names[zone];
        if (!picked) throw new Error(`${args.region} has fewer than ${zoneCount} available zones`);
        return picked;
      });
      const publicSubnet = new aws.ec2.Subnet(
        `${name}-public-${zone}`,
        {
          vpcId: vpc.id,
          cidrBlock: subnetCidr(vpcCidr, zone),
          availabilityZone,
          mapPublicIpOnLaunch: true,
          tags: { ...tags, "kubernetes.io/role/elb": "1" },
        },
        child,
      );
      new aws.ec2.RouteTableAssociation(
        `${name}-public-${zone}`,
        { subnetId: publicSubnet.id, routeTableId: publicRoutes.id },
        child,
      );
      publicSubnets.push(publicSubnet);
      privateSubnets.push(
        new aws.ec2.Subnet(
          `${name}-private-${zone}`,
          {
            vpcId: vpc.id,
            cidrBlock: subnetCidr(vpcCidr, 8 + zone),
            availabilityZone,
            tags: { ...tags, "kubernetes.io/role/internal-elb": "1" },
          },
          child,
        ),
      );
    }
    // One NAT gateway: GPU nodes pull large images and weights; per-zone NATs cost more than they save here.
    const natAddress = new aws.ec2.Eip(`${name}-nat`, { domain: "vpc", tags }, child);
    const nat = new aws.ec2.NatGateway(
      `${name}-nat`,
      { subnetId: publicSubnets[0]!.id, allocationId: natAddress.id, tags },
      child,
    );
    const privateRoutes = new aws.ec2.RouteTable(
      `${name}-private`,
      { vpcId: vpc.id, routes: [{ cidrBlock: "0.0.0.0/0", natGatewayId: nat.id }], tags },
      child,
    );
    privateSubnets.forEach(
      (subnet, zone) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-private-${zone}`,
          { subnetId: subnet.id, routeTableId: privateRoutes.id },
          child,
        ),
    );

    const nodeRole = new aws.iam.Role(
      `${name}-node`,
      {
        assumeRolePolicy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
          ],
        }),
        tags,
      },
      child,
    );
    ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"].forEach(
      (policy) =>
        new aws.iam.RolePolicyAttachment(
          `${name}-node-${policy}`,
          { role: nodeRole.name, policyArn: `arn:aws:iam::aws:policy/${policy}` },
          child,
        ),
    );

    this.cluster = new eks.Cluster(
      `${name}-eks`,
      {
        vpcId: vpc.id,
        publicSubnetIds: publicSubnets.map((subnet) => subnet.id),
        privateSubnetIds: privateSubnets.map((subnet) => subnet.id),
        nodeAssociatePublicIpAddress: false,
        skipDefaultNodeGroup: true,
        instanceRoles: [nodeRole],
        authenticationMode: eks.AuthenticationMode.Api,
        ...(args.kubernetesVersion ? { version: args.kubernetesVersion } : {}),
        tags,
      },
      { parent: this, providers: { aws: provider } },
    );

    const systemPool = args.systemPool ?? {};
    new eks.ManagedNodeGroup(
      `${name}-system`,
      {
        cluster: this.cluster,
        nodeRole,
        amiType: EKS_CPU_AMI_TYPE,
        instanceTypes: [systemPool.instanceType ?? "m7i.large"],
        subnetIds: privateSubnets.map((subnet) => subnet.id),
        scalingConfig: {
          minSize: systemPool.nodes ?? 2,
          desiredSize: systemPool.nodes ?? 2,
          maxSize: (systemPool.nodes ?? 2) + 1,
        },
        labels: { "gpufleet.io/pool": "system" },
        tags,
      },
      { parent: this, providers: { aws: provider } },
    );

    this.gpuNodeGroups = args.gpuPools.map(
      (pool) =>
        new eks.ManagedNodeGroup(
          `${name}-${pool.name}`,
          {
            cluster: this.cluster,
            nodeGroupName: `${name}-${pool.name}`,
            nodeRole,
            amiType: EKS_GPU_AMI_TYPE,
            instanceTypes: [pool.machine.machineType],
            subnetIds: privateSubnets.map((subnet) => subnet.id),
            scalingConfig: { minSize: pool.minNodes, desiredSize: pool.desiredNodes, maxSize: pool.maxNodes },
            labels: pool.labels,
            taints: pool.taints.map((taint) => ({
              key: taint.key,
              value: taint.value,
              effect: cloudTaintEffect(taint.effect),
            })),
            // Model weights and engine images are large: room for both on the root volume.
            diskSize: 500,
            tags: {
              ...tags,
              "gpufleet.io/pool": pool.name,
              "k8s.io/cluster-autoscaler/node-template/label/gpufleet.io/pool": pool.name,
            },
          },
          { parent: this, providers: { aws: provider } },
        ),
    );

    this.kubeconfig = this.cluster.kubeconfigJson;
    this.vpcId = vpc.id;
    this.registerOutputs({ kubeconfig: this.kubeconfig, vpcId: this.vpcId });
  }
}
