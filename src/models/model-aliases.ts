/** Other names of configured models (`models.<name>.aliases`): a request naming one gets that model. Pure. */
import type { Config } from '../config/index.js';

/** The configured model `id` means: itself when it names one (or is not a string), else the model listing it among its aliases, else `id`. */
export function canonicalModelName(config: Pick<Config, 'models'>, id: unknown): unknown {
  if (typeof id !== 'string' || Object.prototype.hasOwnProperty.call(config.models, id)) return id;
  for (const [name, entry] of Object.entries(config.models)) if (entry.aliases.includes(id)) return name;
  return id;
}
