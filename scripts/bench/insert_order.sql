-- pgbench: the row POST /orders commits (order + its first audit event), one transaction each.
WITH inserted AS (
  INSERT INTO orders (id, order_type, side, instrument, limit_price, quantity, request_fingerprint)
  VALUES (gen_random_uuid(), 'limit', 'buy', 'US0378331005', 120.50, 10, 'v1|limit|buy|US0378331005|120.50|10')
  RETURNING id
)
INSERT INTO order_events (order_id, from_status, to_status, reason, attempt)
SELECT id, NULL, 'pending', 'order accepted', 0 FROM inserted;
