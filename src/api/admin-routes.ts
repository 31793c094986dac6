import express from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { DeliveryAdmin } from '../services/delivery-admin.ts';
import type { ErrorLog } from '../services/error-log.ts';

/** Operator and support endpoints (JSON). */
export function adminRouter(errors: ErrorLog, deliveries: DeliveryAdmin) {
  const router = express.Router();
  router.get('/records/:uuid', async (req, res) => {
    res.json(await deliveries.record(req.params.uuid));
  });
  router.get('/deliveries', async (req, res) => {
    const { status, provider, limit } = req.query as Record<string, string | undefined>;
    res.json({ deliveries: await deliveries.list({ status, provider, limit: limit ? Number(limit) || 50 : 50 }) });
  });
  router.post('/deliveries/:id/replay', async (req, res) => {
    res.json(await deliveries.replay(req.params.id));
  });
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
