import express from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { ErrorLog } from '../services/error-log.ts';

/** Operator and support endpoints (JSON). */
export function adminRouter(errors: ErrorLog) {
  const router = express.Router();
  router.get('/errors/:errorUUID', async (req, res) => {
    const found = await errors.find(req.params.errorUUID);
    if (!found) throw new HubError('RECORD_NOT_FOUND', `No error with errorUUID ${req.params.errorUUID}`);
    res.json(found);
  });
  router.get('/errors', async (req, res) => {
    const { provider, reason, limit } = req.query as Record<string, string | undefined>;
    res.json({ errors: await errors.recent({ provider, reason, limit: limit ? Number(limit) || 50 : 50 }) });
  });
  return router;
}
