import { XMLParser } from 'fast-xml-parser';

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, ignoreDeclaration: true, trimValues: true });

/** Parses an answer for assertions; lists stay lists only when repeated. */
export function xml(text: string): any {
  return parser.parse(text);
}

/** The <error> envelope's fields, checking the seed's namespace. */
export function errorOf(text: string): { reason: string; errorUUID: string; message: string } {
  const doc = xml(text);
  if (!doc.error) throw new Error(`not an <error> envelope: ${text}`);
  if (doc.error['@xmlns'] !== 'http://www.intouchfollowup.com/api/2011-11') throw new Error(`wrong namespace: ${text}`);
  return { reason: doc.error.reason, errorUUID: doc.error.errorUUID, message: doc.error.message };
}
