/** The text helpers every render file shares. Pure. */

export type Lines = string[];

/** `{ ... }` with the body indented four spaces. */
export function block(head: string, body: Lines): Lines {
  return [`${head} {`, ...body.map((line) => (line === '' ? line : `    ${line}`)), '}'];
}
