import { COMMON_HTML, CURRENCY, ENTITY_ACTION, EntityDecoder } from '@nodable/entities';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { HubError } from '../errors/hub-error.ts';

/**
 * The format-neutral shape both codecs produce: element name -> text, null
 * (an empty element, which clears a field) or nested elements. XML and JSON
 * bodies become this before any record rule looks at them.
 */
export interface WireDocument {
  [name: string]: string | null | WireDocument;
}

export type WireFormat = 'xml' | 'json';

const MAX_DEPTH = 16;

/**
 * The decoder of character references, built once: the parser would build
 * one per document otherwise (merging the named-entity tables each time, a
 * third of the parse). XML's predefined entities, numeric references and
 * the common HTML names are decoded; the expansion caps bound the work a
 * body can cause. Each document starts from XML 1.0 (a `<?xml version="1.1"?>`
 * would otherwise carry over to the next).
 */
class DocumentEntityDecoder extends EntityDecoder {
  override reset(): this {
    super.reset();
    this.setXmlVersion(1.0);
    return this;
  }
}
const EXPANSION_LIMITS = { maxTotalExpansions: 10000, maxExpandedLength: 1_000_000 };
const entityDecoder = new DocumentEntityDecoder({
  namedEntities: { ...COMMON_HTML, ...CURRENCY },
  numericAllowed: true,
  limit: EXPANSION_LIMITS,
  // No DOCTYPE is accepted (parseXml), so a document can declare no entity of its own.
  onInputEntity: () => ENTITY_ACTION.BLOCK,
});

const parser = new XMLParser({
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  parseTagValue: false,
  trimValues: true,
  // Elements in document order, each with its list of children: a repeated
  // element is seen and refused instead of one copy silently winning, and
  // the document is read straight from the parser's own tree.
  preserveOrder: true,
  // No callback takes a path, so the parser need not build path strings.
  jPath: false,
  maxNestedTags: MAX_DEPTH,
  processEntities: { enabled: true, ...EXPANSION_LIMITS },
  entityDecoder,
});

const malformed = (message: string, detail?: string) => new HubError('MALFORMED_BODY', message, { detail });

/** Parses an XML body into a WireDocument with exactly one root element. */
export function parseXml(text: string): WireDocument {
  // DOCTYPE is where entity expansion attacks (billion laughs, external
  // entities) live; the API never needs one, so it is refused outright.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) {
    throw malformed('XML with a DOCTYPE or ENTITY declaration is not accepted');
  }
  // The seed's own save sample closes with `</ providerInfo >`; partners
  // copied it, so whitespace inside closing tags is tolerated.
  const normalised = text.replace(/<\/\s+([A-Za-z_][\w.-]*)\s*>/g, '</$1>');
  const valid = XMLValidator.validate(normalised);
  if (valid !== true) {
    const unclosed = /^Invalid '\[(.*)\]' found/s.exec(valid.err.msg);
    const what = unclosed
      ? `element(s) ${unclosed[1].split(',').map((n) => `<${n.trim().replace(/"/g, '')}>`).join(', ')} never closed`
      : valid.err.msg;
    throw malformed(`The body is not well-formed XML: ${what} (line ${valid.err.line}, column ${valid.err.col})`);
  }
  let nodes: OrderedNode[];
  try {
    nodes = parser.parse(normalised) as OrderedNode[];
  } catch (error) {
    const message = (error as Error).message;
    if (/nest/i.test(message)) throw malformed(`XML elements may nest at most ${MAX_DEPTH} levels deep`, message);
    const reserved = /Invalid name: "([^"]+)"/.exec(message);
    if (reserved) throw malformed(`The element name <${reserved[1]}> is not allowed`, message);
    throw malformed('The body is not well-formed XML', message);
  }
  return toDocument(nodes, undefined);
}

/** The parser's ordered tree: each node is one element name with its children, or `#text`. */
type OrderedNode = { [name: string]: OrderedNode[] | string };

const TEXT = '#text';

/** The name of an ordered node: its one key besides the attributes (`:@`, ignored). */
function nameOf(node: OrderedNode): string {
  for (const key in node) if (key !== ':@') return key;
  return '';
}

/** The elements of a parent (`path` names it, for messages; undefined for the document). */
function toDocument(nodes: OrderedNode[], path: string | undefined): WireDocument {
  const doc: WireDocument = Object.create(null);
  for (const node of nodes) {
    const name = nameOf(node);
    if (name === TEXT) throw malformed(`<${path ?? 'document'}> mixes text with elements; put the text inside an element`);
    if (name in doc) {
      const times = nodes.filter((n) => nameOf(n) === name).length;
      throw malformed(`<${childPath(path, name)}> appears ${times} times; it may appear once`);
    }
    doc[name] = valueOf(node[name] as OrderedNode[], path, name);
  }
  return doc;
}

const childPath = (path: string | undefined, name: string) => (path === undefined ? name : `${path}/${name}`);

/** An element's children as a field: its text, null when empty (a clear), or the elements it holds. */
function valueOf(children: OrderedNode[], parent: string | undefined, name: string): string | null | WireDocument {
  let text: string | undefined;
  let elements = false;
  for (const child of children) {
    if (nameOf(child) === TEXT) text = (text ?? '') + (child[TEXT] as string);
    else elements = true;
  }
  if (!elements) return text ? text : null;
  if (text !== undefined) throw malformed(`<${childPath(parent, name)}> mixes text with elements; put the text inside an element`);
  return toDocument(children, childPath(parent, name));
}

/** Parses a JSON body into the same WireDocument shape as XML. */
export function parseJson(text: string): WireDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw malformed(`The body is not valid JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(raw)) throw malformed('The JSON body must be an object');
  return jsonToDocument(raw, '', 1);
}

function jsonToDocument(node: Record<string, unknown>, path: string, depth: number): WireDocument {
  if (depth > MAX_DEPTH) throw malformed(`JSON objects may nest at most ${MAX_DEPTH} levels deep`);
  const doc: WireDocument = Object.create(null);
  for (const [name, value] of Object.entries(node)) {
    const where = path ? `${path}/${name}` : name;
    if (value === null || value === '') doc[name] = null;
    else if (typeof value === 'string') doc[name] = value.trim() === '' ? null : value.trim();
    else if (typeof value === 'number' || typeof value === 'boolean') doc[name] = String(value);
    else if (isPlainObject(value)) doc[name] = jsonToDocument(value, where, depth + 1);
    else throw malformed(`"${where}" must be a string, number, boolean, null or object`);
  }
  return doc;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseBody(text: string, format: WireFormat): WireDocument {
  if (text.trim() === '') throw malformed('The request body is empty');
  return format === 'xml' ? parseXml(text) : parseJson(text);
}

/**
 * The single root element of a document, which must be `expected`. JSON
 * bodies may also leave the root out ({ "providerInfo": … }).
 */
export function rootElement(doc: WireDocument, expected: string, format: WireFormat): WireDocument {
  const names = Object.keys(doc);
  if (format === 'json' && !(expected in doc) && names.length > 0) return doc;
  if (names.length !== 1) {
    throw malformed(`The body must have exactly one root element <${expected}>; found ${names.length ? names.map((n) => `<${n}>`).join(', ') : 'none'}`);
  }
  const root = doc[names[0]];
  if (names[0] !== expected) throw malformed(`The root element must be <${expected}>, not <${names[0]}>`);
  if (root === null || typeof root === 'string') throw malformed(`<${expected}> must contain elements`);
  return root;
}
