// Assertions on the synthesized template: least privilege, nothing
// public but the load balancer, encryption at rest everywhere, secrets
// only through Secrets Manager, and the wiring between the parts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { App } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { SupaStack, settingsFrom } from "../lib/supa-stack";

const base = {
  account: "123456789012",
  region: "us-east-1",
  baseDomain: "db.example.org",
  imageRepository: "supa",
  imageTag: "0.1.0",
  certificateArn: "",
  natGateways: 1,
  workers: [
    { name: "w1", maxDatabases: 100 },
    { name: "w2", maxDatabases: 50 },
  ],
  lambdaProjects: [
    { ref: "abcdefghijklmnopqrst", secretName: "supa/a" },
    { ref: "bcdefghijklmnopqrstu", secretName: "supa/b" },
  ],
};

function synth(overrides: object = {}) {
  const settings = settingsFrom({ ...base, ...overrides });
  const app = new App();
  const stack = new SupaStack(app, "Test", { env: { account: settings.account, region: settings.region }, settings });
  return Template.fromStack(stack);
}

const template = synth();
const resources = (type: string) => Object.entries(template.findResources(type));
type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The logical id a `{Ref}` or `{Fn::GetAtt}` points at. */
const target = (v: Json): string | undefined => v?.Ref ?? v?.["Fn::GetAtt"]?.[0];

function taskContainers(family: string): Json[] {
  const [, task] = resources("AWS::ECS::TaskDefinition").find(([id]) => id.startsWith(family))!;
  return (task as Json).Properties.ContainerDefinitions;
}

function roleStatements(roleId: string): Json[] {
  return resources("AWS::IAM::Policy")
    .filter(([, p]) => (p as Json).Properties.Roles.some((r: Json) => target(r) === roleId))
    .flatMap(([, p]) => (p as Json).Properties.PolicyDocument.Statement);
}

const actions = (statement: Json): string[] => [statement.Action].flat();

test("the gateway's role may invoke only its function URLs, signed with IAM", () => {
  const [, task] = resources("AWS::ECS::TaskDefinition").find(([id]) => id.startsWith("GatewayTask"))!;
  const role = target((task as Json).Properties.TaskRoleArn)!;
  const statements = roleStatements(role);
  const lambda = statements.filter((s) => actions(s).some((a) => a.startsWith("lambda:")));
  assert.equal(lambda.length, 1);
  assert.deepEqual(actions(lambda[0]), ["lambda:InvokeFunctionUrl"]);
  assert.deepEqual(lambda[0].Condition, { StringEquals: { "lambda:FunctionUrlAuthType": "AWS_IAM" } });
  const functions = resources("AWS::Lambda::Function")
    .filter(([id]) => id.startsWith("Rest"))
    .map(([id]) => id);
  assert.equal(functions.length, 2);
  assert.deepEqual([lambda[0].Resource].flat().map(target).sort(), functions.sort());
  // Nothing on the gateway's role is a wildcard action or resource.
  for (const s of statements) {
    assert.ok(!actions(s).some((a) => a === "*" || a.endsWith(":*")), JSON.stringify(s));
    assert.notEqual(s.Resource, "*", JSON.stringify(s));
  }
});

test("function URLs are IAM-only and nothing else is invokable by anyone", () => {
  for (const [, url] of resources("AWS::Lambda::Url")) {
    assert.equal((url as Json).Properties.AuthType, "AWS_IAM");
  }
  assert.equal(resources("AWS::Lambda::Url").length, 2);
  template.resourceCountIs("AWS::Lambda::Permission", 0);
});

test("the gateway's role is the only one allowed to call the data plane", () => {
  for (const [id] of resources("AWS::IAM::Role")) {
    const invokes = roleStatements(id).filter((s) => actions(s).some((a) => a.startsWith("lambda:Invoke")));
    if (!id.startsWith("GatewayTaskTaskRole")) assert.equal(invokes.length, 0, id);
  }
});

test("no database or cache is reachable from outside the VPC", () => {
  for (const [, db] of resources("AWS::RDS::DBInstance")) {
    assert.notEqual((db as Json).Properties.PubliclyAccessible, true);
  }
  const isolated = resources("AWS::EC2::Subnet")
    .filter(([id]) => id.includes("data"))
    .map(([id]) => id)
    .sort();
  assert.equal(isolated.length, 2);
  for (const [, group] of resources("AWS::RDS::DBSubnetGroup")) {
    assert.deepEqual((group as Json).Properties.SubnetIds.map(target).sort(), isolated);
  }
  for (const [, group] of resources("AWS::ElastiCache::SubnetGroup")) {
    assert.deepEqual((group as Json).Properties.SubnetIds.map(target).sort(), isolated);
  }
  // Isolated subnets have no route out.
  for (const [, route] of resources("AWS::EC2::Route")) {
    assert.ok(!String(target((route as Json).Properties.RouteTableId)).includes("data"));
  }
  // Only the load balancer takes traffic from the internet.
  const open = [
    ...resources("AWS::EC2::SecurityGroup").flatMap(([id, g]) =>
      ((g as Json).Properties.SecurityGroupIngress ?? []).map((r: Json) => ({ id, ...r })),
    ),
    ...resources("AWS::EC2::SecurityGroupIngress").map(([id, r]) => ({ id, ...(r as Json).Properties })),
  ].filter((r) => r.CidrIp === "0.0.0.0/0" || r.CidrIpv6 === "::/0");
  assert.ok(open.length >= 2);
  for (const rule of open) {
    assert.ok(String(rule.id).startsWith("Alb"), JSON.stringify(rule));
    assert.ok([80, 443].includes(rule.FromPort), JSON.stringify(rule));
  }
});

test("everything is encrypted at rest with the customer key, and Redis in transit", () => {
  const [[keyId, key]] = resources("AWS::KMS::Key");
  assert.equal((key as Json).Properties.EnableKeyRotation, true);
  for (const [, db] of resources("AWS::RDS::DBCluster")) {
    assert.equal((db as Json).Properties.StorageEncrypted, true);
    assert.equal(target((db as Json).Properties.KmsKeyId), keyId);
    assert.equal((db as Json).Properties.DeletionProtection, true);
  }
  template.hasResourceProperties("AWS::ElastiCache::ReplicationGroup", {
    AtRestEncryptionEnabled: true,
    TransitEncryptionEnabled: true,
    KmsKeyId: { "Fn::GetAtt": [keyId, "Arn"] },
  });
  // The AUTH token is a reference CloudFormation resolves at deploy time.
  const [[, redis]] = resources("AWS::ElastiCache::ReplicationGroup");
  assert.match(JSON.stringify((redis as Json).Properties.AuthToken), /\{\{resolve:secretsmanager:/);
  for (const [id, secret] of resources("AWS::SecretsManager::Secret")) {
    assert.equal(target((secret as Json).Properties.KmsKeyId), keyId, id);
  }
  template.hasResourceProperties("AWS::S3::Bucket", {
    BucketEncryption: {
      ServerSideEncryptionConfiguration: [
        { ServerSideEncryptionByDefault: { SSEAlgorithm: "aws:kms", KMSMasterKeyID: { "Fn::GetAtt": [keyId, "Arn"] } } },
      ],
    },
    PublicAccessBlockConfiguration: {
      BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
    },
  });
  for (const [id, fn] of resources("AWS::Lambda::Function").filter(([id]) => id.startsWith("Rest"))) {
    assert.equal(target((fn as Json).Properties.KmsKeyArn), keyId, id);
  }
});

test("secrets reach containers only through Secrets Manager", () => {
  const secretive = /(TOKEN|PASSWORD|SECRET|MASTER_KEY|PGPASSWORD)/;
  for (const [, task] of resources("AWS::ECS::TaskDefinition")) {
    for (const c of (task as Json).Properties.ContainerDefinitions) {
      for (const e of c.Environment ?? []) {
        assert.ok(!secretive.test(e.Name), `${c.Name}: ${e.Name} in plain environment`);
        assert.ok(!JSON.stringify(e.Value).includes("@") || e.Name === "SUPA_DATABASE_URL", e.Name);
      }
      assert.equal(c.ReadonlyRootFilesystem, true, c.Name);
      assert.equal(c.User, "65532", c.Name);
    }
  }
  const tm = taskContainers("TenantManagerTask")[0];
  assert.deepEqual(tm.Secrets.map((s: Json) => s.Name).sort(), [
    "PGPASSWORD", "SUPA_ADMIN_TOKEN", "SUPA_MASTER_KEY", "SUPA_REDIS_PASSWORD", "SUPA_SERVICE_TOKEN",
  ]);
  // The database URL names the user, never the password.
  const url = JSON.stringify(tm.Environment.find((e: Json) => e.Name === "SUPA_DATABASE_URL").Value);
  assert.match(url, /postgres:\/\/supa_admin@/);
  // Lambda environments hold references CloudFormation resolves, not values.
  for (const [, fn] of resources("AWS::Lambda::Function").filter(([id]) => id.startsWith("Rest"))) {
    const env = (fn as Json).Properties.Environment.Variables;
    for (const name of ["PGRST_DB_URI", "PGRST_JWT_SECRET"]) {
      assert.match(JSON.stringify(env[name]), /\{\{resolve:secretsmanager:/, name);
    }
  }
});

test("the master key is generated as 64 hex digits and kept", () => {
  const [, secret] = resources("AWS::SecretsManager::Secret").find(([id]) => id.startsWith("MasterKey"))!;
  const generate = (secret as Json).Properties.GenerateSecretString;
  assert.equal(generate.PasswordLength, 64);
  assert.equal(generate.ExcludeUppercase, true);
  assert.equal(generate.ExcludePunctuation, true);
  assert.equal(generate.ExcludeCharacters, "ghijklmnopqrstuvwxyz");
  assert.equal((secret as Json).DeletionPolicy, "Retain");
});

test("the load balancer serves HTTPS for both URL forms and only redirects HTTP", () => {
  template.hasResourceProperties("AWS::ElasticLoadBalancingV2::LoadBalancer", {
    Scheme: "internet-facing",
    LoadBalancerAttributes: Match.arrayWith([{ Key: "routing.http.drop_invalid_header_fields.enabled", Value: "true" }]),
  });
  template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", { Port: 443, Protocol: "HTTPS" });
  template.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
    Port: 80,
    DefaultActions: [Match.objectLike({ Type: "redirect", RedirectConfig: Match.objectLike({ Port: "443", Protocol: "HTTPS" }) })],
  });
  template.hasResourceProperties("AWS::CertificateManager::Certificate", {
    DomainName: "*.db.example.org",
    SubjectAlternativeNames: ["db.example.org"],
  });
  template.hasResourceProperties("AWS::ElasticLoadBalancingV2::TargetGroup", {
    Port: 8000,
    HealthCheckPath: "/health",
  });
  // A given certificate is used instead of a new one.
  const given = synth({ certificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/abc" });
  given.resourceCountIs("AWS::CertificateManager::Certificate", 0);
  given.hasResourceProperties("AWS::ElasticLoadBalancingV2::Listener", {
    Certificates: [{ CertificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/abc" }],
  });
});

test("workers decode the WAL and the register task wires workers and Lambda upstreams", () => {
  const params = resources("AWS::RDS::DBClusterParameterGroup").map(([, g]) => (g as Json).Properties.Parameters);
  assert.equal(params.filter((p) => p["rds.logical_replication"] === "1").length, 2);
  const steps = taskContainers("RegisterTask");
  assert.deepEqual(steps.map((c: Json) => c.Name), [
    "register-w1", "register-w2", "upstream-abcdefghijklmnopqrst", "upstream-bcdefghijklmnopqrstu",
  ]);
  // One step after another; the last one ends the task.
  steps.forEach((c: Json, i: number) => {
    assert.equal(c.Essential, i === steps.length - 1);
    assert.deepEqual(c.EntryPoint, ["/usr/local/bin/supa"]);
    if (i > 0) assert.deepEqual(c.DependsOn, [{ ContainerName: steps[i - 1].Name, Condition: "SUCCESS" }]);
  });
  assert.deepEqual(steps[0].Command.slice(0, 3), ["workers", "register", "w1"]);
  assert.ok(steps[0].Secrets.some((s: Json) => s.Name === "SUPA_WORKER_ADMIN_PASSWORD"));
  const upstream = steps[2].Command;
  assert.deepEqual(upstream.slice(0, 3), ["projects", "upstream", "abcdefghijklmnopqrst"]);
  assert.deepEqual(upstream.slice(-2), ["--region", "us-east-1"]);
  assert.equal(target(upstream[upstream.indexOf("--lambda") + 1]), resources("AWS::Lambda::Url")[0][0]);
  // The custom resource may start only that task.
  const run = resources("AWS::IAM::Policy").flatMap(([, p]) => (p as Json).Properties.PolicyDocument.Statement)
    .filter((s: Json) => actions(s).includes("ecs:RunTask"));
  assert.equal(run.length, 1);
  assert.equal(target(run[0].Resource), resources("AWS::ECS::TaskDefinition").find(([id]) => id.startsWith("RegisterTask"))![0]);
});

test("the gateways find the tenant manager, Redis over TLS and the bucket", () => {
  const gw = taskContainers("GatewayTask")[0];
  const env = Object.fromEntries(gw.Environment.map((e: Json) => [e.Name, e.Value]));
  assert.equal(env.SUPA_TENANT_URL, "http://tenant-manager.supa.internal:8001");
  assert.equal(env.SUPA_BASE_DOMAIN, "db.example.org");
  assert.match(JSON.stringify(env.SUPA_REDIS_URL), /rediss:\/\//);
  assert.equal(env.SUPA_STORAGE_BACKEND, "s3");
  assert.deepEqual(gw.HealthCheck.Command, ["CMD", "/usr/local/bin/supa", "health"]);
  template.hasResourceProperties("AWS::ServiceDiscovery::Service", { Name: "tenant-manager" });
  template.hasResourceProperties("AWS::ApplicationAutoScaling::ScalableTarget", { MinCapacity: 2, MaxCapacity: 10 });
});

test("bad settings are refused with the key named", () => {
  assert.throws(() => settingsFrom(undefined), /context `supa` is missing/);
  assert.throws(() => synth({ imageTag: "latest" }), /supa.imageTag must name a release/);
  assert.throws(() => synth({ account: "12" }), /supa.account/);
  assert.throws(() => synth({ workers: [] }), /supa.workers/);
  assert.throws(() => synth({ lambdaProjects: [{ ref: "Nope", secretName: "x" }] }), /lambdaProjects/);
  assert.throws(() => synth({ baseDomain: "https://x" }), /supa.baseDomain/);
});
