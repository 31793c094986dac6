import { randomUUID } from 'node:crypto';
import http from 'node:http';
import express from 'express';
import { XMLParser } from 'fast-xml-parser';
import { appServer } from '../src/api/app.ts';

/**
 * The ceiling the ingest benchmark compares against: Express 5 and
 * fast-xml-parser parsing the same XML, checking the four providerInfo
 * fields and answering a uuid, storing nothing. `--app-server`: served as
 * the hub serves its app (appServer), to show what that alone is worth.
 */
const parser = new XMLParser({ parseTagValue: false });
const app = express();
app.post('/connector/api/2011-11/user', express.text({ type: () => true, limit: '1mb' }), (req, res) => {
  const info = parser.parse(req.body as string)?.user?.providerInfo;
  if (!info?.identifier || !info.clientID || !info.clubID || !info.recordID) {
    res.status(400).send('<error><reason>VALIDATION</reason></error>');
    return;
  }
  res.type('application/xml').send(`<response xmlns="http://www.intouchfollowup.com/api/2011-11"><uuid>${randomUUID()}</uuid></response>`);
});
// app.listen is http.createServer(app).listen: the bare server as Express serves it.
const server = process.argv.includes('--app-server') ? appServer(app) : http.createServer(app);
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'Connector API listening', port: (server.address() as { port: number }).port }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
