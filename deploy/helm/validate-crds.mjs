// Validates the custom resources among rendered manifests (YAML on stdin)
// against the CloudNativePG, Knative and KEDA schemas, through the
// kubernetes-models validators generated from those projects' CRDs.
// Prints one JSON line: {"checked": ["Kind name", ...], "errors": [...],
// "other": ["apiVersion Kind", ...]} where `other` are the documents left to
// the Kubernetes schemas; exits 1 when a resource is invalid or of a custom
// group this script does not know.
import { parseAllDocuments } from "yaml";
import { Cluster, Pooler } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1";
import { Service as KnativeService } from "@kubernetes-models/knative/serving.knative.dev/v1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";

const models = {
  "postgresql.cnpg.io/v1 Cluster": Cluster,
  "postgresql.cnpg.io/v1 Pooler": Pooler,
  "serving.knative.dev/v1 Service": KnativeService,
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;

const out = { checked: [], errors: [], other: [] };
for (const doc of parseAllDocuments(input)) {
  if (doc.errors.length) {
    out.errors.push(`YAML: ${doc.errors[0].message}`);
    continue;
  }
  const resource = doc.toJS();
  if (!resource) continue;
  const type = `${resource.apiVersion} ${resource.kind}`;
  const Model = models[type];
  if (!Model) {
    // Core groups have no dot, or end in k8s.io; anything else is a CRD.
    const group = String(resource.apiVersion).split("/").slice(0, -1).join("/");
    if (group.includes(".") && !group.endsWith("k8s.io")) {
      out.errors.push(`${type}: no schema known for this custom resource`);
    } else {
      out.other.push(type);
    }
    continue;
  }
  const name = `${resource.kind} ${resource.metadata?.name}`;
  try {
    new Model(resource).validate();
    out.checked.push(name);
  } catch (e) {
    out.errors.push(`${name}: ${e.message}`);
  }
}
console.log(JSON.stringify(out));
process.exit(out.errors.length ? 1 : 0);
