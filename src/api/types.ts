import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, RawServerDefault } from 'fastify';
import type { Logger } from 'pino';

/** The fastify instance type of this proxy (pino logger). */
export type ProxyApp = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger>;
