// The events of the differential check: every event type, a track event for
// each event name the entry's presets subscribe to, and events with fields
// missing or of the wrong type. Ids and timestamps are fixed, so both
// runtimes see the same bytes.
import { presetsOf } from '../adapter/subscriptions.js';

const AT = '2026-11-30T12:00:00.000Z';

function base(n, type) {
  return {
    type,
    messageId: `diff-${n}`,
    userId: 'user-42',
    anonymousId: 'anon-42',
    // No sentAt: the host would move `timestamp` by the clock skew it shows.
    // No receivedAt: the host sets it (the check gives Node the same "now").
    timestamp: AT,
    context: {
      ip: '203.0.113.7',
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
      locale: 'en-US',
      page: { url: 'https://shop.example/checkout?utm_source=news', path: '/checkout', referrer: 'https://news.example/', title: 'Checkout' },
      traits: { email: 'Ada@Example.com', phone: '+1 (555) 555-0100', first_name: 'Ada', last_name: 'Lovelace' },
      device: { id: 'device-1', type: 'ios', advertisingId: 'ad-1' },
      os: { name: 'iOS', version: '17.1' },
      app: { name: 'Shop', version: '3.2', namespace: 'example.shop' },
      campaign: { source: 'news', medium: 'email', name: 'winter' },
      library: { name: 'analytics-node', version: '2.1.0' },
    },
    integrations: {},
  };
}

const PRODUCTS = [
  { product_id: 'p-1', sku: 'sku-1', name: 'Tea', price: 12.5, quantity: 2, category: 'Drinks', url: 'https://shop.example/p/1' },
  { product_id: 'p-2', sku: 'sku-2', name: 'Cup', price: 5, quantity: 1, category: 'Kitchen' },
];

function track(n, event, extra = {}) {
  return {
    ...base(n, 'track'),
    event,
    properties: {
      order_id: 'order-9', checkout_id: 'co-9', revenue: 30, total: 30, value: 30, price: 12.5, currency: 'USD',
      products: PRODUCTS, product_id: 'p-1', name: 'Tea', category: 'Drinks', query: 'tea', email: 'ada@example.com',
      ...extra,
    },
  };
}

/** The events for `definition`'s presets, in a fixed order. */
export function corpus(definition) {
  const names = new Set(['Order Completed', 'Product Viewed', 'Signed Up']);
  for (const p of presetsOf(definition)) {
    for (const m of p.subscribe.matchAll(/event\s*=\s*"([^"]+)"/g)) names.add(m[1]);
  }
  let n = 0;
  const events = [...names].sort().map((name) => track(++n, name));
  events.push({ ...base(++n, 'identify'), traits: { email: 'ada@example.com', first_name: 'Ada', last_name: 'Lovelace', phone: '+15555550100', plan: 'pro', created_at: '2025-01-02T03:04:05.000Z', address: { city: 'London', country: 'GB', postal_code: 'N1', state: 'LDN', street: '1 Way' } } });
  events.push({ ...base(++n, 'page'), name: 'Checkout', category: 'Shop', properties: { url: 'https://shop.example/checkout', title: 'Checkout', path: '/checkout' } });
  events.push({ ...base(++n, 'screen'), name: 'Cart', properties: { items: 2 } });
  events.push({ ...base(++n, 'group'), groupId: 'org-7', traits: { name: 'Example Ltd', plan: 'enterprise', employees: 40 } });
  events.push({ ...base(++n, 'alias'), previousId: 'anon-42' });
  // Missing fields: no userId, no context traits, no properties.
  const bare = { ...base(++n, 'track'), event: 'Order Completed', properties: {} };
  delete bare.userId;
  bare.context = { library: bare.context.library };
  events.push(bare);
  // Fields of the wrong type.
  events.push(track(++n, 'Order Completed', { revenue: 'thirty', currency: 7, products: 'none', email: 42 }));
  return events;
}
