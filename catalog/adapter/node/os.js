// `os` for catalog entries: only what helper modules read at load.
export const EOL = '\n';
export function homedir() {
  return '/';
}
export function platform() {
  return 'wasi';
}
export default { EOL, homedir, platform };
