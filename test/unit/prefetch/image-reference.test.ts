import { describe, expect, it } from 'vitest';
import { InvalidReferenceError, parseImageReference, parsePlatform, platformMatches } from '../../../src/prefetch/image-reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseImageReference: docker normalisation', () => {
  it.each([
    ['alpine', 'docker.io/library/alpine:latest', 'registry-1.docker.io', 'library/alpine'],
    ['alpine:3.20', 'docker.io/library/alpine:3.20', 'registry-1.docker.io', 'library/alpine'],
    ['docker.io/library/alpine:3.20', 'docker.io/library/alpine:3.20', 'registry-1.docker.io', 'library/alpine'],
    ['index.docker.io/alpine', 'docker.io/library/alpine:latest', 'registry-1.docker.io', 'library/alpine'],
    ['bitnami/redis:7', 'docker.io/bitnami/redis:7', 'registry-1.docker.io', 'bitnami/redis'],
    ['ghcr.io/o/r:v1', 'ghcr.io/o/r:v1', 'ghcr.io', 'o/r'],
    [`ghcr.io/o/r@${DIGEST}`, `ghcr.io/o/r@${DIGEST}`, 'ghcr.io', 'o/r'],
    [`ghcr.io/o/r:v1@${DIGEST}`, `ghcr.io/o/r@${DIGEST}`, 'ghcr.io', 'o/r'],
    ['registry.test:5000/a/b/c:tag', 'registry.test:5000/a/b/c:tag', 'registry.test:5000', 'a/b/c'],
    ['registry.test:443/a:tag', 'registry.test/a:tag', 'registry.test', 'a'],
    ['localhost/app', 'localhost/app:latest', 'localhost', 'app'],
    ['Registry.Test/app', 'registry.test/app:latest', 'registry.test', 'app'],
  ])('%s', (text, canonical, host, repository) => {
    const reference = parseImageReference(text);
    expect(reference.canonical).toBe(canonical);
    expect(reference.host).toBe(host);
    expect(reference.repository).toBe(repository);
  });

  it.each([
    ['', 'expected 1 to 512 characters'],
    ['x'.repeat(513), 'expected 1 to 512 characters'],
    ['Alpine', 'lower case'],
    ['Bad//Reference', 'lower case'],
    ['bad//reference', 'repository name is not valid'],
    ['alpine:', 'the tag'],
    ['alpine:-x', 'the tag'],
    ['alpine@sha256:1234', 'the digest'],
    ['alpine@md5:abcd', 'the digest'],
    ['bad_host.example:99999/app', 'not a registry name'],
    ['registry.test/', 'repository name is not valid'],
    ['registry.test/../etc', 'repository name is not valid'],
  ])('refuses %j with a message naming what is wrong', (text, why) => {
    expect(() => parseImageReference(text)).toThrow(InvalidReferenceError);
    expect(() => parseImageReference(text)).toThrow(why);
  });
});

describe('platforms', () => {
  it('parses os/arch[/variant], any case', () => {
    expect(parsePlatform('linux/arm64')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('Linux/ARM/v7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
  });

  it.each(['linux', 'linux/', '/amd64', 'linux/arm/v7/x', 'linux/a b', 'linux/amd64?'])('refuses %j', (text) => {
    expect(() => parsePlatform(text)).toThrow('expected OS/ARCH[/VARIANT]');
  });

  it('matches an index entry by os and architecture, and by variant only when one is asked for', () => {
    expect(platformMatches(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'arm64' })).toBe(false);
    expect(platformMatches(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    // arm64 images say v8 or nothing: the same platform.
    expect(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/amd64'), { os: 'unknown', architecture: 'unknown' })).toBe(false);
    expect(platformMatches(parsePlatform('linux/amd64'), undefined)).toBe(false);
  });
});
