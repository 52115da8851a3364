/** Invalid configuration: the message names the setting and the expected form. The CLI exits 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
