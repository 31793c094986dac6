import express, { type NextFunction, type Request, type Response } from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { Logger } from '../log.ts';
import type { HubServices } from '../services/hub-services.ts';
import { adminRouter } from './admin-routes.ts';
import { authenticateAdmin, authenticateProvider } from './authentication.ts';
import { errorResponder } from './error-responder.ts';
import { RateLimiter } from './rate-limiter.ts';
import { leadSourceRoutes, userRoutes } from './record-routes.ts';

export const API_BASE = '/connector/api/2011-11';

export interface AppOptions {
  services: HubServices;
  logger: Logger;
  bodyLimitBytes: number;
  adminToken: string | undefined;
  /** Answers /ready: true when the database answers. */
  isReady: () => Promise<boolean>;
  /** Set while shutting down: new partner calls get UNAVAILABLE. */
  isDraining?: () => boolean;
}

const ROUTES: Record<string, string[]> = {
  [`${API_BASE}/user`]: ['GET', 'POST'],
  [`${API_BASE}/staff`]: ['GET', 'POST'],
  [`${API_BASE}/leadsource`]: ['GET', 'POST'],
};

export function createApp(options: AppOptions): express.Express {
  const { services, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/ready', async (_req, res) => {
    const ready = !options.isDraining?.() && (await options.isReady().catch(() => false));
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable' });
  });

  // Raw text for every content type: the codecs decide what it is, so a
  // wrong Content-Type gets a precise answer instead of an empty body.
  const body = express.text({ type: () => true, limit: options.bodyLimitBytes, defaultCharset: 'utf-8' });
  const api = express.Router();
  // Every partner call passes one gate before its route: not while draining, only the path's methods.
  api.use((req: Request, _res: Response, next: NextFunction) => {
    if (options.isDraining?.()) throw new HubError('UNAVAILABLE', 'The hub is restarting; retry shortly', { retryAfter: 2 });
    const allowed = ROUTES[`${API_BASE}${req.path.replace(/\/$/, '')}`];
    if (allowed && !allowed.includes(req.method)) {
      throw new HubError('METHOD_NOT_ALLOWED', `${req.method} is not supported on ${API_BASE}${req.path}; use ${allowed.join(' or ')}`, {
        headers: { Allow: allowed.join(', ') },
      });
    }
    next();
  });
  api.use(authenticateProvider(services.tenancy, new RateLimiter()));
  api.use(body);
  // The record routes sit on this router itself, not on routers of their own: one level of routing less per call.
  userRoutes(api, services.users, 'user');
  userRoutes(api, services.users, 'staff');
  leadSourceRoutes(api, services.leadSources);
  app.use(API_BASE, api);

  app.use('/admin', authenticateAdmin(options.adminToken), express.json({ limit: options.bodyLimitBytes }), adminRouter(services.errors, services.deliveries));

  app.use((req: Request) => {
    throw new HubError('ROUTE_NOT_FOUND', `No such path: ${req.method} ${req.path}. Partner paths start with ${API_BASE}/ (user, staff, leadsource)`);
  });
  app.use(errorResponder(services.errors, logger));
  return app;
}
