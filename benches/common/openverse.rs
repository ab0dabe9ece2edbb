//! The Openverse catalog's `image` table for the data-path benchmarks (dump_throughput,
//! redump): its 26 columns and their real types, and generated rows shaped like the catalog's.

/// The Openverse catalog's `image` columns.
pub const CREATE_SQL: &str = r#"
CREATE TABLE image (
  identifier uuid NOT NULL, created_on timestamptz NOT NULL, updated_on timestamptz NOT NULL,
  ingestion_type text, provider text, source text, foreign_identifier text, foreign_landing_url text,
  url text NOT NULL, thumbnail text, width integer, height integer, filesize integer,
  license text NOT NULL, license_version text, creator text, creator_url text, title text,
  meta_data jsonb, tags jsonb, watermarked boolean, last_synced_with_source timestamptz,
  removed_from_source boolean NOT NULL, filetype text, category text[], standardized_popularity double precision);
"#;

/// Rows `@FROM@..=@TO@` of the table. Text, jsonb and array values stay under 1020 bytes.
pub const IMAGE_SQL: &str = r#"
INSERT INTO image
SELECT md5('image' || g)::uuid,
  timestamptz '2019-01-01 00:00:00+00' + g * interval '37 seconds',
  timestamptz '2024-01-01 00:00:00+00' + (g % 100003) * interval '1 minute',
  (ARRAY['commoncrawl', 'provider_api', 'provider_api'])[1 + g % 3],
  p, CASE WHEN g % 5 = 0 THEN p || '_sub' ELSE p END,
  CASE WHEN g % 13 = 0 THEN NULL ELSE (g::bigint * 7919)::text END,
  'https://www.' || p || '.org/photos/' || g,
  'https://live.static' || p || '.com/' || g % 9973 || '/' || g || '_' || left(md5(g::text), 10) || '_b.jpg',
  CASE WHEN g % 4 = 0 THEN NULL ELSE 'https://live.static' || p || '.com/' || g % 9973 || '/' || g || '_m.jpg' END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE 200 + (g::bigint * 37) % 5800 END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE 150 + (g::bigint * 53) % 4000 END,
  CASE WHEN g % 6 = 0 THEN NULL ELSE 10000 + (g::bigint * 7919) % 9000000 END,
  lic, CASE WHEN lic = 'cc0' THEN '1.0' WHEN g % 3 = 0 THEN '2.0' ELSE '4.0' END,
  CASE WHEN g % 9 = 0 THEN NULL ELSE (ARRAY['Jürgen Müller', '山田太郎', 'Zoë Ødegaard', 'anonymous photographer',
    'María José García', 'Ngũgĩ wa Thiong''o'])[1 + g % 6] || ' ' || g % 10007 END,
  CASE WHEN g % 9 = 0 THEN NULL ELSE 'https://www.' || p || '.org/people/' || g % 10007 END,
  CASE WHEN g % 17 = 0 THEN NULL ELSE (ARRAY['Sunset over the bay', '東京タワーの夜景', 'Café in Montmartre – été',
    'Mountain lake 🏔️ reflection', 'Старый город', 'IMG_' || g])[1 + g % 6] || ' #' || g END,
  jsonb_build_object('license_url', 'https://creativecommons.org/licenses/' || lic || '/4.0/',
    'raw_license_url', 'https://creativecommons.org/licenses/' || lic || '/4.0/legalcode',
    'views', g % 100000, 'pub_date', 1500000000 + g,
    'description', CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('Lorem ipsum dolor sit amet, ünïcödé 🎨 ', g % 9) END),
  CASE WHEN g % 8 = 0 THEN NULL ELSE (
    SELECT jsonb_agg(jsonb_build_object('name', (ARRAY['landscape', 'nature', 'sky', 'water', 'people', 'city', 'night',
      'tree', 'flower', 'dog', 'cat', 'beach', 'mountain', 'street', 'art', 'snow', 'bird', 'car', 'food',
      'portrait'])[1 + (g::bigint * i) % 20], 'accuracy', round(((g + i) % 100) / 100.0, 2), 'provider', 'clarifai'))
    FROM generate_series(1, 1 + g % 7) AS i) END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE g % 50 = 0 END,
  timestamptz '2025-06-01 00:00:00+00' + (g % 5000) * interval '1 hour',
  g % 1000 = 0,
  CASE WHEN g % 11 = 0 THEN NULL ELSE (ARRAY['jpg', 'png', 'gif', 'jpg', 'svg'])[1 + g % 5] END,
  CASE WHEN g % 7 = 0 THEN NULL ELSE ARRAY[(ARRAY['photograph', 'digitized_artwork', 'illustration'])[1 + g % 3]] END,
  CASE WHEN g % 19 = 0 THEN NULL ELSE ((g::bigint * 7919) % 100000) / 100000.0 END
FROM generate_series(@FROM@, @TO@) AS g,
  LATERAL (SELECT (ARRAY['flickr', 'wikimedia', 'stocksnap', 'smithsonian', 'met', 'rawpixel'])[1 + g % 6] AS p,
    (ARRAY['by', 'by-sa', 'cc0', 'by-nc', 'by-nd', 'pdm'])[1 + (g / 7) % 6] AS lic) AS v;
"#;
