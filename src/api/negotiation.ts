import type { Request } from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { WireFormat } from '../wire/document.ts';

const XML_TYPES = /^(application|text)\/(.+\+)?xml$/i;
const JSON_TYPES = /^application\/(.+\+)?json$/i;

/**
 * The body's format from Content-Type. A missing Content-Type is sniffed
 * (2012-era clients often sent none); anything else non-XML/JSON is refused.
 */
export function requestFormat(req: Request, body: string): WireFormat {
  const header = req.headers['content-type'];
  if (!header) return body.trimStart().startsWith('{') ? 'json' : 'xml';
  const type = header.split(';')[0].trim();
  if (XML_TYPES.test(type)) return 'xml';
  if (JSON_TYPES.test(type)) return 'json';
  throw new HubError('UNSUPPORTED_MEDIA_TYPE', `Content-Type ${type} is not accepted; send application/xml or application/json`);
}

/**
 * The answer's format: what Accept asks for; without a preference, the
 * request body's format; XML by default (the seeds' format).
 */
export function responseFormat(req: Request, bodyFormat?: WireFormat): WireFormat {
  const accept = req.headers.accept;
  if (!accept || accept.trim() === '' || accept.trim() === '*/*') return bodyFormat ?? 'xml';
  const chosen = req.accepts(['application/xml', 'application/json', 'text/xml']);
  if (chosen === 'application/json') return 'json';
  if (chosen) return 'xml';
  return 'xml';
}

/** Like responseFormat, but refuses an Accept that names neither format. */
export function negotiatedFormat(req: Request, bodyFormat?: WireFormat): WireFormat {
  const accept = req.headers.accept;
  if (accept && accept.trim() !== '' && !req.accepts(['application/xml', 'application/json', 'text/xml'])) {
    throw new HubError('NOT_ACCEPTABLE', `Accept ${accept} names no format this API answers in; ask for application/xml or application/json`);
  }
  return responseFormat(req, bodyFormat);
}

export const CONTENT_TYPES: Record<WireFormat, string> = {
  xml: 'application/xml; charset=utf-8',
  json: 'application/json; charset=utf-8',
};
