import type { WireFormat } from './document.ts';

/**
 * An answer as an ordered tree, rendered to XML or to JSON with the same
 * names. `list` marks a container whose children are items (rendered as a
 * JSON array).
 */
export interface OutElement {
  name: string;
  text?: string | null;
  children?: OutElement[];
  list?: boolean;
  /** XML namespace attribute on this element (the seed puts it on <response> and <error>). */
  xmlns?: string;
}

export const API_NAMESPACE = 'http://www.intouchfollowup.com/api/2011-11';

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]);
}

function xmlOf(el: OutElement): string {
  const open = el.xmlns ? `<${el.name} xmlns="${escapeXml(el.xmlns)}">` : `<${el.name}>`;
  if (el.children) return `${open}${el.children.map(xmlOf).join('')}</${el.name}>`;
  return `${open}${escapeXml(el.text ?? '')}</${el.name}>`;
}

export function renderXml(root: OutElement): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${xmlOf(root)}`;
}

function jsonValue(el: OutElement): unknown {
  if (!el.children) return el.text ?? null;
  if (el.list) return el.children.map(jsonValue);
  const obj: Record<string, unknown> = {};
  for (const child of el.children) obj[child.name] = jsonValue(child);
  return obj;
}

export function renderJson(root: OutElement): string {
  return JSON.stringify({ [root.name]: jsonValue(root) });
}

export function render(root: OutElement, format: WireFormat): string {
  return format === 'xml' ? renderXml(root) : renderJson(root);
}

/** Elements for the non-null values, in the given order. */
export function fieldElements(names: readonly string[], values: Record<string, string | null | undefined>): OutElement[] {
  const out: OutElement[] = [];
  for (const name of names) {
    const text = values[name];
    if (text !== null && text !== undefined) out.push({ name, text });
  }
  return out;
}
