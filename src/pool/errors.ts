import { ClientError } from '../models/errors.js';

/** A request the pool could not serve; `retryAfter` (seconds) goes into the Retry-After header. */
export class PoolError extends ClientError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(status, code, message);
    this.name = 'PoolError';
  }
}
