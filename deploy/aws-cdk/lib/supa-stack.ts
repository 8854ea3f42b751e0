// Supa on AWS: the gateways and the tenant manager on ECS Fargate behind an
// ALB, Aurora PostgreSQL for the management database and the workers,
// ElastiCache Redis, S3 for objects, supa-rest as Lambda functions behind
// IAM-authenticated Function URLs, every secret in Secrets Manager under one
// customer-managed KMS key.
import {
  Duration,
  RemovalPolicy,
  Stack,
  StackProps,
  CfnOutput,
  aws_certificatemanager as acm,
  aws_ec2 as ec2,
  aws_ecr as ecr,
  aws_ecs as ecs,
  aws_elasticache as elasticache,
  aws_elasticloadbalancingv2 as elbv2,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_rds as rds,
  aws_s3 as s3,
  aws_secretsmanager as secretsmanager,
  custom_resources as cr,
} from "aws-cdk-lib";
import { Construct } from "constructs";

/** A worker: an Aurora cluster that holds project databases. */
export interface WorkerSettings {
  name: string;
  maxDatabases: number;
}

/** A project whose data plane runs as a Lambda; its secret holds
 * `PGRST_DB_URI` and `PGRST_JWT_SECRET` (the project's connection). */
export interface LambdaProject {
  ref: string;
  secretName: string;
}

export interface SupaSettings {
  account: string;
  region: string;
  baseDomain: string;
  imageRepository: string;
  imageTag: string;
  /** An ACM certificate for `{baseDomain}` and `*.{baseDomain}`; made
   * (DNS validation) when empty. */
  certificateArn: string;
  natGateways: number;
  gateway: { minCount: number; maxCount: number; cpu: number; memoryMiB: number };
  workers: WorkerSettings[];
  lambdaProjects: LambdaProject[];
}

/** The settings from the `supa` context, refused with the key named. */
export function settingsFrom(raw: unknown): SupaSettings {
  // `cdk synth -c supa='{...}'` gives the JSON as a string.
  if (typeof raw === "string") {
    try {
      raw = JSON.parse(raw);
    } catch {
      throw new Error("context supa must be a JSON object");
    }
  }
  if (typeof raw !== "object" || raw === null) {
    throw new Error("context `supa` is missing (see cdk.json)");
  }
  const s = raw as Partial<SupaSettings>;
  const need = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`context supa.${what}`);
  };
  need(/^\d{12}$/.test(String(s.account)), "account must be a 12-digit AWS account id");
  need(/^[a-z]{2}(-[a-z]+)+-\d$/.test(String(s.region)), "region must be an AWS region like eu-west-1");
  need(/^([a-z0-9-]+\.)+[a-z]{2,}$/.test(String(s.baseDomain)), "baseDomain must be a DNS name");
  need(typeof s.imageRepository === "string" && s.imageRepository.length > 0, "imageRepository is required");
  need(typeof s.imageTag === "string" && s.imageTag.length > 0 && s.imageTag !== "latest",
    "imageTag must name a release, not latest");
  need(Array.isArray(s.workers) && s.workers.length > 0, "workers needs at least one worker");
  for (const w of s.workers ?? []) {
    need(/^[a-z][a-z0-9-]{0,30}$/.test(w.name), `workers: ${JSON.stringify(w.name)} is not a worker name`);
  }
  for (const p of s.lambdaProjects ?? []) {
    need(/^[a-z]{20}$/.test(p.ref), `lambdaProjects: ${JSON.stringify(p.ref)} is not a project ref`);
  }
  return {
    account: s.account!,
    region: s.region!,
    baseDomain: s.baseDomain!,
    imageRepository: s.imageRepository!,
    imageTag: s.imageTag!,
    certificateArn: s.certificateArn ?? "",
    natGateways: s.natGateways ?? 1,
    gateway: { minCount: 2, maxCount: 10, cpu: 1024, memoryMiB: 2048, ...s.gateway },
    workers: s.workers!,
    lambdaProjects: s.lambdaProjects ?? [],
  };
}

export interface SupaStackProps extends StackProps {
  settings: SupaSettings;
}

const API_PORT = 8001;
const GATEWAY_PORT = 8000;
const NAMESPACE = "supa.internal";
/** Distroless's `nonroot`, the image's user. */
const USER = "65532";

export class SupaStack extends Stack {
  private readonly zones: string[];

  constructor(scope: Construct, id: string, props: SupaStackProps) {
    super(scope, id, props);
    const s = props.settings;
    this.zones = [`${s.region}a`, `${s.region}b`];

    // One key encrypts every secret, database, cache, bucket and Lambda
    // environment; rotated yearly.
    const key = new kms.Key(this, "Key", {
      enableKeyRotation: true,
      description: "Supa: secrets and data at rest",
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Public subnets hold only the ALB and NAT; the services run in private
    // subnets; data stores sit in isolated subnets without a route out.
    const vpc = new ec2.Vpc(this, "Vpc", {
      availabilityZones: this.availabilityZones,
      natGateways: s.natGateways,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "app", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
    });
    const app = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    const data = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    const group = (name: string) =>
      new ec2.SecurityGroup(this, `${name}Sg`, { vpc, description: `Supa ${name}`, allowAllOutbound: true });
    const gatewaySg = group("Gateway");
    const tenantManagerSg = group("TenantManager");
    const registerSg = group("Register");
    const lambdaSg = group("RestLambda");

    // Secrets: the master key as 64 hex digits (what Secrets Manager can
    // generate; Supa reads it as 32 bytes), tokens of 48 characters.
    const secret = (name: string, description: string, generate: secretsmanager.SecretStringGenerator) =>
      new secretsmanager.Secret(this, name, {
        description,
        encryptionKey: key,
        generateSecretString: generate,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    const token = { passwordLength: 48, excludePunctuation: true, includeSpace: false };
    const masterKey = secret("MasterKey", "Supa master key: decrypts every project's secrets", {
      passwordLength: 64,
      excludeUppercase: true,
      excludePunctuation: true,
      includeSpace: false,
      excludeCharacters: "ghijklmnopqrstuvwxyz",
    });
    const adminToken = secret("AdminToken", "Supa Management API token", token);
    const serviceToken = secret("ServiceToken", "Supa internal directory API token", token);
    const redisPassword = secret("RedisPassword", "Supa Redis AUTH token", token);

    // Object bytes of every project.
    const objects = new s3.Bucket(this, "Objects", {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Aurora PostgreSQL: the management database, and one cluster per
    // worker with logical replication on (realtime decodes the WAL with
    // wal2json, which Aurora ships).
    const aurora = (name: string, database: string | undefined, parameters: Record<string, string>) => {
      const db = new rds.DatabaseCluster(this, name, {
        engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_15_17 }),
        writer: rds.ClusterInstance.serverlessV2("writer"),
        readers: [rds.ClusterInstance.serverlessV2("reader", { scaleWithWriter: true })],
        serverlessV2MinCapacity: 0.5,
        serverlessV2MaxCapacity: 16,
        credentials: rds.Credentials.fromGeneratedSecret("supa_admin", { encryptionKey: key }),
        defaultDatabaseName: database,
        parameters,
        vpc,
        vpcSubnets: data,
        storageEncrypted: true,
        storageEncryptionKey: key,
        backup: { retention: Duration.days(14) },
        deletionProtection: true,
        removalPolicy: RemovalPolicy.SNAPSHOT,
        cloudwatchLogsExports: ["postgresql"],
      });
      return db;
    };
    const management = aurora("ManagementDb", "supa_management", {});
    management.connections.allowDefaultPortFrom(tenantManagerSg, "tenant manager");
    const workers = s.workers.map((w, i) => {
      const db = aurora(`Worker${i + 1}`, undefined, {
        "rds.logical_replication": "1",
        max_replication_slots: "64",
        max_wal_senders: "64",
      });
      db.connections.allowDefaultPortFrom(tenantManagerSg, "tenant manager: project databases");
      db.connections.allowDefaultPortFrom(gatewaySg, "gateways: data plane and realtime");
      db.connections.allowDefaultPortFrom(lambdaSg, "supa-rest on Lambda");
      db.connections.allowDefaultPortFrom(registerSg, "the register task's probe");
      return { settings: w, db };
    });

    // ElastiCache Redis: AUTH token, TLS in transit, encrypted at rest,
    // a replica in the other zone.
    const redisSg = group("Redis");
    redisSg.addIngressRule(gatewaySg, ec2.Port.tcp(6379), "gateways");
    redisSg.addIngressRule(tenantManagerSg, ec2.Port.tcp(6379), "tenant manager");
    const redisSubnets = new elasticache.CfnSubnetGroup(this, "RedisSubnets", {
      description: "Supa Redis",
      subnetIds: vpc.selectSubnets(data).subnetIds,
    });
    const redis = new elasticache.CfnReplicationGroup(this, "Redis", {
      replicationGroupDescription: "Supa project configs and invalidations",
      engine: "redis",
      engineVersion: "7.1",
      cacheNodeType: "cache.t4g.small",
      numCacheClusters: 2,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      port: 6379,
      cacheSubnetGroupName: redisSubnets.ref,
      securityGroupIds: [redisSg.securityGroupId],
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      kmsKeyId: key.keyArn,
      // A dynamic reference: CloudFormation reads the secret at deploy time.
      authToken: redisPassword.secretValue.unsafeUnwrap(),
    });
    const redisUrl = `rediss://${redis.attrPrimaryEndPointAddress}:${redis.attrPrimaryEndPointPort}/0`;

    const repository = ecr.Repository.fromRepositoryName(this, "Repository", s.imageRepository);
    const image = ecs.ContainerImage.fromEcrRepository(repository, s.imageTag);
    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    // supa-rest as a Lambda per listed project: the same image, its
    // connection from the project's secret (CloudFormation dynamic
    // references, so the template holds none), reached only through an
    // AWS_IAM Function URL.
    const functions = s.lambdaProjects.map((p) => {
      const projectSecret = secretsmanager.Secret.fromSecretNameV2(this, `RestSecret-${p.ref}`, p.secretName);
      const fn = new lambda.DockerImageFunction(this, `Rest-${p.ref}`, {
        description: `supa-rest for project ${p.ref}`,
        code: lambda.DockerImageCode.fromEcr(repository, {
          tagOrDigest: s.imageTag,
          entrypoint: ["/usr/local/bin/supa-rest"],
        }),
        vpc,
        vpcSubnets: app,
        securityGroups: [lambdaSg],
        memorySize: 512,
        timeout: Duration.seconds(30),
        environmentEncryption: key,
        environment: {
          PGRST_DB_URI: projectSecret.secretValueFromJson("PGRST_DB_URI").unsafeUnwrap(),
          PGRST_JWT_SECRET: projectSecret.secretValueFromJson("PGRST_JWT_SECRET").unsafeUnwrap(),
          PGRST_DB_SCHEMAS: "public,storage,graphql_public",
          PGRST_DB_ANON_ROLE: "anon",
        },
        logGroup,
      });
      const url = fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM });
      return { project: p, fn, url };
    });

    const cluster = new ecs.Cluster(this, "Cluster", {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
      defaultCloudMapNamespace: { name: NAMESPACE, useForServiceConnect: false },
    });
    const tenantManagerUrl = `http://tenant-manager.${NAMESPACE}:${API_PORT}`;
    const storageEnv = {
      SUPA_STORAGE_BACKEND: "s3",
      SUPA_STORAGE_S3_BUCKET: objects.bucketName,
      SUPA_STORAGE_S3_REGION: s.region,
    };
    const secretEnv = (secret: secretsmanager.ISecret, field?: string) =>
      ecs.Secret.fromSecretsManager(secret, field);
    // Containers run as nonroot on a read-only root; scratch goes to a
    // task-local volume.
    const container = (
      task: ecs.FargateTaskDefinition,
      name: string,
      options: Omit<ecs.ContainerDefinitionOptions, "image">,
    ) => {
      const c = task.addContainer(name, {
        image,
        user: USER,
        readonlyRootFilesystem: true,
        logging: ecs.LogDrivers.awsLogs({ streamPrefix: name, logGroup }),
        ...options,
      });
      return c;
    };
    const withScratch = (task: ecs.FargateTaskDefinition, c: ecs.ContainerDefinition) => {
      task.addVolume({ name: "scratch" });
      c.addMountPoints({ containerPath: "/var/lib/supa", sourceVolume: "scratch", readOnly: false });
    };

    // The tenant manager: one task (it runs migrations and the storage
    // sweep), found by the gateways through Cloud Map.
    const tmTask = new ecs.FargateTaskDefinition(this, "TenantManagerTask", { cpu: 512, memoryLimitMiB: 1024 });
    const tm = container(tmTask, "tenant-manager", {
      command: ["/usr/local/bin/supa-tenant-manager"],
      portMappings: [{ containerPort: API_PORT, name: "api" }],
      environment: {
        SUPA_PROFILE: "production",
        SUPA_BIND: "0.0.0.0",
        SUPA_API_PORT: String(API_PORT),
        SUPA_DATA_DIR: "/var/lib/supa",
        // The project URLs Studio shows.
        SUPA_GATEWAY_URL: `https://${s.baseDomain}`,
        // The password comes apart, as PGPASSWORD (read by the driver).
        SUPA_DATABASE_URL: `postgres://supa_admin@${management.clusterEndpoint.hostname}:${management.clusterEndpoint.port}/supa_management`,
        SUPA_REDIS_URL: redisUrl,
        ...storageEnv,
      },
      secrets: {
        PGPASSWORD: secretEnv(management.secret!, "password"),
        SUPA_MASTER_KEY: secretEnv(masterKey),
        SUPA_ADMIN_TOKEN: secretEnv(adminToken),
        SUPA_SERVICE_TOKEN: secretEnv(serviceToken),
        SUPA_REDIS_PASSWORD: secretEnv(redisPassword),
      },
      healthCheck: {
        command: ["CMD", "/usr/local/bin/supa", "health", `http://127.0.0.1:${API_PORT}/health`],
        startPeriod: Duration.seconds(60),
      },
    });
    withScratch(tmTask, tm);
    objects.grantReadWrite(tmTask.taskRole);
    objects.grantDelete(tmTask.taskRole);
    const tmService = new ecs.FargateService(this, "TenantManager", {
      cluster,
      taskDefinition: tmTask,
      desiredCount: 1,
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
      vpcSubnets: app,
      securityGroups: [tenantManagerSg],
      circuitBreaker: { rollback: true },
      cloudMapOptions: { name: "tenant-manager" },
    });
    tenantManagerSg.addIngressRule(gatewaySg, ec2.Port.tcp(API_PORT), "gateways: internal directory API");
    tenantManagerSg.addIngressRule(registerSg, ec2.Port.tcp(API_PORT), "register task: Management API");

    // Gateways behind the ALB, scaled on CPU.
    const gwTask = new ecs.FargateTaskDefinition(this, "GatewayTask", {
      cpu: s.gateway.cpu,
      memoryLimitMiB: s.gateway.memoryMiB,
    });
    const gw = container(gwTask, "gateway", {
      command: ["/usr/local/bin/supa-gateway"],
      portMappings: [
        { containerPort: GATEWAY_PORT, name: "http" },
        { containerPort: API_PORT, name: "admin" },
      ],
      environment: {
        SUPA_PROFILE: "production",
        SUPA_BIND: "0.0.0.0",
        SUPA_GATEWAY_PORT: String(GATEWAY_PORT),
        SUPA_API_PORT: String(API_PORT),
        SUPA_TENANT_URL: tenantManagerUrl,
        SUPA_BASE_DOMAIN: s.baseDomain,
        SUPA_REDIS_URL: redisUrl,
        SUPA_DATA_DIR: "/var/lib/supa",
        SUPA_FUNCTIONS_DIR: "/var/lib/supa/functions",
        DENO_DIR: "/var/lib/supa/deno",
        ...storageEnv,
      },
      secrets: {
        SUPA_SERVICE_TOKEN: secretEnv(serviceToken),
        SUPA_REDIS_PASSWORD: secretEnv(redisPassword),
      },
      healthCheck: { command: ["CMD", "/usr/local/bin/supa", "health"], startPeriod: Duration.seconds(30) },
      stopTimeout: Duration.seconds(30),
    });
    withScratch(gwTask, gw);
    objects.grantReadWrite(gwTask.taskRole);
    objects.grantDelete(gwTask.taskRole);
    // The gateways may call the data-plane functions through their URLs,
    // and nothing else of Lambda.
    if (functions.length > 0) {
      gwTask.taskRole.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ["lambda:InvokeFunctionUrl"],
          resources: functions.map((f) => f.fn.functionArn),
          conditions: { StringEquals: { "lambda:FunctionUrlAuthType": "AWS_IAM" } },
        }),
      );
    }
    const gateways = new ecs.FargateService(this, "Gateway", {
      cluster,
      taskDefinition: gwTask,
      desiredCount: s.gateway.minCount,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      vpcSubnets: app,
      securityGroups: [gatewaySg],
      circuitBreaker: { rollback: true },
    });
    gateways.node.addDependency(tmService);
    const scaling = gateways.autoScaleTaskCount({ minCapacity: s.gateway.minCount, maxCapacity: s.gateway.maxCount });
    scaling.scaleOnCpuUtilization("Cpu", { targetUtilizationPercent: 60 });

    // The ALB: HTTPS for {ref}.{domain} and {domain}/project/{ref}; plain
    // HTTP only redirects; malformed headers are dropped (smuggling).
    const certificate = s.certificateArn
      ? acm.Certificate.fromCertificateArn(this, "Certificate", s.certificateArn)
      : new acm.Certificate(this, "Certificate", {
          domainName: `*.${s.baseDomain}`,
          subjectAlternativeNames: [s.baseDomain],
          validation: acm.CertificateValidation.fromDns(),
        });
    const alb = new elbv2.ApplicationLoadBalancer(this, "Alb", {
      vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      dropInvalidHeaderFields: true,
      idleTimeout: Duration.seconds(120),
    });
    const https = alb.addListener("Https", {
      port: 443,
      certificates: [certificate],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
    });
    https.addTargets("Gateways", {
      port: GATEWAY_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [gateways.loadBalancerTarget({ containerName: "gateway", containerPort: GATEWAY_PORT })],
      healthCheck: { path: "/health", healthyHttpCodes: "200", interval: Duration.seconds(10) },
      deregistrationDelay: Duration.seconds(30),
    });
    alb.addRedirect({ sourcePort: 80, targetPort: 443 });

    // After each deploy: register the workers and point the Lambda
    // projects' upstreams, with the CLI (each call idempotent). The image
    // has no shell, so each step is a container that waits for the one
    // before it to succeed.
    const registerTask = new ecs.FargateTaskDefinition(this, "RegisterTask", { cpu: 256, memoryLimitMiB: 512 });
    const steps: { name: string; command: string[]; secrets: Record<string, ecs.Secret> }[] = [
      ...workers.map(({ settings: w, db }) => ({
        name: `register-${w.name}`,
        command: [
          "workers", "register", w.name,
          "--host", db.clusterEndpoint.hostname,
          "--port", String(db.clusterEndpoint.port),
          "--admin-user", "supa_admin",
          "--max-databases", String(w.maxDatabases),
        ],
        secrets: { SUPA_WORKER_ADMIN_PASSWORD: secretEnv(db.secret!, "password") },
      })),
      ...functions.map(({ project, url }) => ({
        name: `upstream-${project.ref}`,
        command: ["projects", "upstream", project.ref, "--lambda", url.url, "--region", s.region],
        secrets: {},
      })),
    ];
    let previous: ecs.ContainerDefinition | undefined;
    steps.forEach((step, i) => {
      const c = container(registerTask, step.name, {
        entryPoint: ["/usr/local/bin/supa"],
        command: step.command,
        essential: i === steps.length - 1,
        environment: { SUPA_API_URL: tenantManagerUrl },
        secrets: { SUPA_ADMIN_TOKEN: secretEnv(adminToken), ...step.secrets },
      });
      if (previous) c.addContainerDependencies({ container: previous, condition: ecs.ContainerDependencyCondition.SUCCESS });
      previous = c;
    });
    const runTask = {
      service: "ECS",
      action: "runTask",
      parameters: {
        cluster: cluster.clusterArn,
        taskDefinition: registerTask.taskDefinitionArn,
        launchType: "FARGATE",
        networkConfiguration: {
          awsvpcConfiguration: {
            subnets: vpc.selectSubnets(app).subnetIds,
            securityGroups: [registerSg.securityGroupId],
            assignPublicIp: "DISABLED",
          },
        },
      },
      // A new task definition (new image, workers or projects) runs again.
      physicalResourceId: cr.PhysicalResourceId.of(registerTask.taskDefinitionArn),
    };
    const register = new cr.AwsCustomResource(this, "Register", {
      onCreate: runTask,
      onUpdate: runTask,
      installLatestAwsSdk: false,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ["ecs:RunTask"], resources: [registerTask.taskDefinitionArn] }),
        new iam.PolicyStatement({
          actions: ["iam:PassRole"],
          resources: [registerTask.taskRole.roleArn, registerTask.obtainExecutionRole().roleArn],
        }),
      ]),
    });
    register.node.addDependency(tmService);

    new CfnOutput(this, "LoadBalancerDns", {
      value: alb.loadBalancerDnsName,
      description: `Point ${s.baseDomain} and *.${s.baseDomain} here`,
    });
    new CfnOutput(this, "AdminTokenSecret", { value: adminToken.secretArn });
    new CfnOutput(this, "MasterKeySecret", { value: masterKey.secretArn, description: "Back this up" });
  }

  /** Two zones named from the region: no lookup, so synth runs offline. */
  get availabilityZones(): string[] {
    return this.zones;
  }
}
