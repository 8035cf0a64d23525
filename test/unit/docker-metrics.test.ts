/** The `call` label of Docker API metrics: IDs and names replaced, so the label set stays bounded. */
import { expect } from 'chai';
import { dockerCallLabel } from '../../src/backends/docker-metrics.js';

describe('Docker API call labels', () => {
  const cases: Array<[string, string, string]> = [
    ['GET', '/containers/json?all=true&filters=%7B%7D', 'GET /containers/json'],
    ['POST', '/containers/create?name=nbs-alice', 'POST /containers/create'],
    ['GET', '/containers/3f2a9c/json?', 'GET /containers/{id}/json'],
    ['POST', '/containers/3f2a9c/stop?t=2', 'POST /containers/{id}/stop'],
    ['DELETE', '/containers/3f2a9c?force=true', 'DELETE /containers/{id}'],
    ['GET', '/services?filters=x', 'GET /services'],
    ['POST', '/services/create', 'POST /services/create'],
    ['POST', '/services/wz1k/update?version=12', 'POST /services/{id}/update'],
    ['GET', '/services/wz1k/logs?follow=1', 'GET /services/{id}/logs'],
    ['GET', '/tasks?filters=%7B%7D', 'GET /tasks'],
    ['GET', '/images/local/notebook:latest/json', 'GET /images/{name}/json'],
    ['GET', '/images/registry.example:5000/team/nb@sha256:abc/json', 'GET /images/{name}/json'],
    ['DELETE', '/images/sha256:abcdef?force=false', 'DELETE /images/{name}'],
    ['POST', '/images/create?fromImage=local/x&tag=1', 'POST /images/create'],
    ['GET', '/images/json', 'GET /images/json'],
    ['POST', '/commit?container=abc&repo=x', 'POST /commit'],
    ['GET', '/events?since=1&filters=x', 'GET /events'],
    ['GET', '/v1.41/info', 'GET /info'],
    ['GET', '/_ping', 'GET /_ping'],
    ['GET', '/volumes/nbs-alice-home', 'GET /volumes/{id}'],
    ['POST', '/volumes/create', 'POST /volumes/create'],
  ];
  for (const [method, path, want] of cases) it(`${method} ${path} → ${want}`, () => expect(dockerCallLabel(method, path)).to.equal(want));
});
