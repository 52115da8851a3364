// Query parameters that carry credentials: registry tokens and the signatures
// of storage URLs (S3, GCS, CloudFront, Azure), which are bearer secrets too;
// `target` is the storage URL a docker.proxy URL carries (base64url, signature and all).
const SECRET_PARAMS = /^(token|access_token|target|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|signature|sig|key-pair-id|policy|se|sp|sv|skoid|sktid|password)$/i;

/** The URL with the values of credential-bearing query parameters replaced. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        // keep the raw name
      }
      return eq >= 0 && SECRET_PARAMS.test(decoded) ? `${name}=[redacted]` : pair;
    })
    .join('&');
  return `${url.slice(0, q)}?${query}`;
}
