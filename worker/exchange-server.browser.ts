// The browser bundle's exchange server: none, as a page cannot listen; a browser worker is compute-only (it opens links to the owners).
import type { ExchangeServerOptions } from './exchange-server.ts';

export class ExchangeServer {
  constructor(_o: ExchangeServerOptions) {}

  listen(): Promise<string> {
    return Promise.reject(new Error('a browser cannot listen: a browser worker is compute-only'));
  }

  async close(): Promise<void> {}
}
