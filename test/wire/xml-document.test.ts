import { describe, expect, it } from 'vitest';
import { parseJson, parseXml } from '../../src/wire/document.ts';
import { renderJson, renderXml } from '../../src/wire/render.ts';

describe('XML documents', () => {
  it('reads empty elements as null (clear) and keeps leading zeros as text', () => {
    expect(parseXml('<user><userInfo><zipcode>01234</zipcode><city/><state></state></userInfo></user>')).toEqual({
      user: { userInfo: { zipcode: '01234', city: null, state: null } },
    });
  });

  it('decodes the predefined and numeric character references', () => {
    expect(parseXml('<a><b>Smith &amp; Sons &lt;3 &#233;&#x41;</b></a>')).toEqual({ a: { b: 'Smith & Sons <3 éA' } });
  });

  it('decodes each reference once, and the common HTML names', () => {
    expect(parseXml('<a><b>&amp;#233; &amp;amp; &copy; &euro;</b></a>')).toEqual({ a: { b: '&#233; &amp; © €' } });
  });

  it('reads every document by its own XML version: a 1.1 declaration does not carry over to the next body', () => {
    // XML 1.0 has no place for the control character U+0001, so its reference is dropped; 1.1 allows it.
    expect(parseXml('<?xml version="1.1"?><a><b>x&#x1;y</b></a>')).toEqual({ a: { b: 'x\u0001y' } });
    expect(parseXml('<a><b>x&#x1;y</b></a>')).toEqual({ a: { b: 'xy' } });
  });

  it('accepts the seed sample closing tag with spaces', () => {
    expect(parseXml('<user><providerInfo><recordID>1</recordID></ providerInfo ></user>')).toEqual({ user: { providerInfo: { recordID: '1' } } });
  });

  it('refuses DOCTYPE, repeated elements, mixed text and reserved names', () => {
    expect(() => parseXml('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>')).toThrow(/DOCTYPE/);
    expect(() => parseXml('<a><b>1</b><b>2</b></a>')).toThrow('<a/b> appears 2 times');
    expect(() => parseXml('<a>text<b>1</b></a>')).toThrow(/mixes text/);
    expect(() => parseXml('<a><__proto__>1</__proto__></a>')).toThrow('<__proto__> is not allowed');
  });
});

describe('JSON documents', () => {
  it('maps null and empty strings to clear, numbers and booleans to text', () => {
    expect(parseJson('{"user":{"userInfo":{"city":null,"state":"","zipcode":1234,"x":true}}}')).toEqual({
      user: { userInfo: { city: null, state: null, zipcode: '1234', x: 'true' } },
    });
  });

  it('refuses arrays and non-object bodies', () => {
    expect(() => parseJson('[1]')).toThrow(/must be an object/);
    expect(() => parseJson('{"a":[1]}')).toThrow(/"a" must be/);
  });
});

describe('answers', () => {
  const answer = { name: 'response', xmlns: 'urn:x', children: [{ name: 'uuid', text: 'a<b' }] };
  it('render to escaped XML and to JSON with the same names', () => {
    expect(renderXml(answer)).toBe('<?xml version="1.0" encoding="UTF-8"?>\n<response xmlns="urn:x"><uuid>a&lt;b</uuid></response>');
    expect(JSON.parse(renderJson(answer))).toEqual({ response: { uuid: 'a<b' } });
    expect(JSON.parse(renderJson({ name: 'list', list: true, children: [{ name: 'i', children: [{ name: 'n', text: '1' }] }] }))).toEqual({ list: [{ n: '1' }] });
  });
});
