#!/usr/bin/env bash
# Layover in a local kind cluster: builds the image, creates the cluster (kind-config.yaml), deploys
# Layover and the node setup, patches CoreDNS, then has a node pull an image through Layover.
# Needs docker, kind and kubectl. Remove it all with: kind delete cluster --name layover
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster=layover
image=layover:local
namespace=layover
check_repo=library/busybox
check_image=docker.io/$check_repo:1.37
kc=(kubectl --context "kind-$cluster")

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind.sh: $tool is needed" >&2; exit 1; }
done

docker build -t "$image" "$root"
if ! kind get clusters | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --config "$here/kind-config.yaml"
fi
# The nodes get Layover's image from here, not from a registry: a registry it intercepts could
# not serve Layover before Layover runs.
kind load docker-image "$image" --name "$cluster"

"${kc[@]}" apply -k "$here"
"${kc[@]}" -n "$namespace" rollout status deployment/layover --timeout=180s
"${kc[@]}" -n "$namespace" rollout status daemonset/layover-node-setup --timeout=180s

# Pods that resolve registry names themselves (skopeo, buildkit) go through CoreDNS.
"${kc[@]}" apply -f "$here/coredns-configmap.yaml"
"${kc[@]}" -n kube-system rollout restart deployment/coredns
"${kc[@]}" -n kube-system rollout status deployment/coredns --timeout=120s

# A pull by a node: containerd resolves Docker Hub's registry to Layover (/etc/hosts) and trusts
# Layover's CA for it (certs.d), so the image comes through the cache.
"${kc[@]}" -n "$namespace" delete pod pull-check --ignore-not-found
"${kc[@]}" -n "$namespace" run pull-check --image="$check_image" --restart=Never --command -- true
if ! "${kc[@]}" -n "$namespace" wait pod/pull-check --for=jsonpath='{.status.phase}'=Succeeded --timeout=180s; then
  "${kc[@]}" -n "$namespace" describe pod pull-check >&2
  exit 1
fi
"${kc[@]}" -n "$namespace" delete pod pull-check
echo "Layover served the pull of $check_image:"
"${kc[@]}" -n "$namespace" logs deployment/layover | grep -F "\"url\":\"/v2/$check_repo/" || {
  echo "kind.sh: no request for $check_image in Layover's log" >&2
  exit 1
}
