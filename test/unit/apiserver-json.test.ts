/** JSON request bodies: member names given twice, `__proto__` and nesting depth, as the API server decodes them. */
import { expect } from 'chai';
import { BodyShapeError, parseJson } from '../../src/apiserver/request/json.js';

describe('API server JSON bodies', () => {
  it('parses a body without repeated names and reports none', () => {
    const text = JSON.stringify({ metadata: { name: 'a', labels: { x: 'y' } }, spec: { env: [{ name: 'A', value: '1' }], tags: ['t'] } });
    const r = parseJson(text);
    expect(r.value).to.deep.equal(JSON.parse(text));
    expect(r.duplicates).to.deep.equal([]);
  });

  it('names each member given twice by its path, at any level and in list items', () => {
    expect(parseJson('{"metadata":{"name":"a","name":"b"},"data":{"a":"1","a":"2"}}').duplicates).to.deep.equal(['metadata.name', 'data.a']);
    expect(parseJson('{"items":[{"x":1},{"x":1,"x":2}]}').duplicates).to.deep.equal(['items[1].x']);
    // The first value is an object whose own members the parsed value loses with it.
    expect(parseJson('{"spec":{"a":1,"b":2},"spec":{"c":3}}').duplicates).to.deep.equal(['spec']);
  });

  it('reads escaped member names as JSON does', () => {
    expect(parseJson('{"a":1,"\\u0061":2}').duplicates).to.deep.equal(['a']);
    expect(parseJson('{"a\\"b":1,"c":2}').duplicates).to.deep.equal([]);
  });

  it('is not misled by quotes, colons, commas and braces inside strings', () => {
    const r = parseJson('{"a":"x\\",\\"a\\":1","c":[",{\\"a\\":","}"],"d":"\\\\"}');
    expect(r.duplicates).to.deep.equal([]);
    expect(r.value).to.deep.equal({ a: 'x","a":1', c: [',{"a":', '}'], d: '\\' });
  });

  it('refuses a member named __proto__, escaped or not', () => {
    expect(() => parseJson('{"metadata":{"__proto__":{"x":1}}}')).to.throw(BodyShapeError, /__proto__.*metadata\.__proto__/);
    expect(() => parseJson('{"\\u005f_proto__":1}')).to.throw(BodyShapeError, /__proto__/);
    expect(parseJson('{"v":"__proto__"}').duplicates).to.deep.equal([]);
  });

  it('refuses nesting past the limit, naming where', () => {
    expect(() => parseJson('{"a":[[[1]]]}', 3)).to.throw(BodyShapeError, /more than 3 levels deep \(at a\[0\]\)/);
    expect(parseJson('{"a":[[1]]}', 3).value).to.deep.equal({ a: [[1]] });
  });

  it('leaves text that is not JSON to JSON.parse', () => {
    expect(() => parseJson('{"a":1,')).to.throw(SyntaxError);
    expect(() => parseJson('{"a":"1}')).to.throw(SyntaxError);
  });
});
