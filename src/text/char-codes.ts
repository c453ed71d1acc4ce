/**
 * Character codes for the hand-written scanners on the hot paths (journald prefixes, linkerd
 * headers, continuation lines, JSON framing), where charCodeAt tests replace regexes.
 */
export const CH_TAB = 9;
export const CH_NEWLINE = 10;
export const CH_CARRIAGE_RETURN = 13;
export const CH_SPACE = 32;
export const CH_QUOTE = 34;
export const CH_HASH = 35;
export const CH_PLUS = 43;
export const CH_COMMA = 44;
export const CH_DASH = 45;
export const CH_DOT = 46;
export const CH_0 = 48;
export const CH_9 = 57;
export const CH_COLON = 58;
export const CH_T = 84;
export const CH_Z = 90;
export const CH_OPEN_BRACKET = 91;
export const CH_BACKSLASH = 92;
export const CH_CLOSE_BRACKET = 93;
export const CH_OPEN_BRACE = 123;
export const CH_CLOSE_BRACE = 125;

export function isDigit(code: number): boolean {
  return code >= CH_0 && code <= CH_9;
}
