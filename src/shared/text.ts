/**
 * Text from outside (a device's hello, an uploaded file's name, a class list) as it may be shown:
 * control characters (NUL and the rest of C0, DEL, C1) and Unicode's bidirectional controls (U+202E
 * turns `gpj.exe` around on screen) become U+FFFD, visibly replaced rather than silently dropped.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export const safeText = (s: string): string => s.replace(UNSAFE, '\uFFFD')
