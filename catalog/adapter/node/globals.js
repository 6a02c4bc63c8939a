// Globals that Node gives every module and the sandbox does not: Buffer and process.
export { Buffer } from 'buffer';
export { default as process } from './process.js';
