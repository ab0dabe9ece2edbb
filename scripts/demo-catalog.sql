-- The demo's catalog: two Openverse-shaped tables, generated (no download).
--   image: 50,000 rows   audio: 20,000 rows
-- Every column type the real catalog uses: uuid, text, varchar, text[], jsonb, timestamptz,
-- boolean, integer, double precision; NULLs in most columns; non-ASCII text and emoji; a few
-- rows with tabs, quotes, newlines and long values. md5 strings keep the data from compressing
-- away, so the demo's small fileSizeThreshold splits each table into several Parquet parts.
-- Rows with removed_from_source = true are the ones the demo's query leaves out.

CREATE TABLE image (
  id integer PRIMARY KEY,
  identifier uuid NOT NULL,
  created_on timestamptz NOT NULL,
  updated_on timestamptz NOT NULL,
  provider varchar(80),
  source varchar(80),
  foreign_identifier varchar(3000),
  url varchar(3000) NOT NULL,
  thumbnail varchar(3000),
  width integer,
  height integer,
  filesize integer,
  license varchar(50) NOT NULL,
  license_version varchar(25),
  creator varchar(2000),
  creator_url varchar(2000),
  title varchar(5000),
  meta_data jsonb,
  tags jsonb,
  keywords text[],
  watermarked boolean,
  removed_from_source boolean NOT NULL,
  filetype varchar(5),
  category varchar(80),
  standardized_popularity double precision
);

INSERT INTO image
SELECT g,
  md5('image' || g)::uuid,
  timestamptz '2019-01-01 00:00:00+00' + g * interval '617 seconds',
  timestamptz '2025-06-01 12:00:00+00' + (g % 1000) * interval '1 minute',
  (ARRAY['flickr', 'wikimedia', 'stocksnap', 'smithsonian', 'met'])[1 + g % 5],
  (ARRAY['flickr', 'wikimedia', 'stocksnap', 'smithsonian_air_and_space', 'met'])[1 + g % 5],
  md5('fid' || g),
  'https://live.staticflickr.com/' || (g % 9000) || '/' || md5('url' || g) || '_b.jpg',
  CASE WHEN g % 6 = 0 THEN NULL ELSE 'https://live.staticflickr.com/' || (g % 9000) || '/' || md5('url' || g) || '_m.jpg' END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE 320 + g % 3700 END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE 240 + g % 2900 END,
  CASE WHEN g % 13 = 0 THEN NULL ELSE 10000 + (g * 7919) % 9000000 END,
  (ARRAY['by', 'by-sa', 'cc0', 'by-nc', 'pdm'])[1 + g % 5],
  (ARRAY['2.0', '3.0', '4.0', '1.0'])[1 + g % 4],
  CASE WHEN g % 7 = 0 THEN NULL ELSE (ARRAY['Créateur', 'Fotógrafo', '写真家', 'Фотограф', 'Photographer'])[1 + g % 5] || ' ' || g END,
  CASE WHEN g % 7 = 0 THEN NULL ELSE 'https://www.flickr.com/photos/' || md5('creator' || g) END,
  CASE WHEN g % 17 = 0 THEN NULL ELSE 'Title ' || g || ' – ' || (ARRAY['sunset über Zürich', '東京の夜', 'café à Paris 🎨', 'Ñandú', 'plain'])[1 + g % 5] || ' ' || md5('title' || g) END,
  jsonb_build_object('license_url', 'https://creativecommons.org/licenses/by/4.0/', 'views', g * 3, 'description', md5('d' || g) || repeat(' lorem', g % 40)),
  CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_array(
    jsonb_build_object('name', 'tag ' || g % 300, 'provider', 'clarifai', 'accuracy', round((0.5 + (g % 50) / 100.0)::numeric, 2)),
    jsonb_build_object('name', md5('t' || g)::text)) END,
  CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['nature', 'sky ' || g % 10, 'été', NULL] END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
  g % 50 = 0,
  (ARRAY['jpg', 'png', 'gif', NULL])[1 + g % 4],
  (ARRAY['photograph', 'digitized_artwork', 'illustration', NULL])[1 + g % 4],
  CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000) / 1000.0 END
FROM generate_series(1, 49998) AS g;

INSERT INTO image (id, identifier, created_on, updated_on, provider, url, license, creator, title, meta_data, tags, keywords, watermarked, removed_from_source)
VALUES
  (49999, gen_random_uuid(), now(), now(), 'odd', 'https://example.org/odd', 'by',
   E'tab\there "quote" back\\slash\nnew line', repeat('é', 4000), jsonb_build_object('long', repeat('y', 20000)),
   '[{"name": "a\"b"}]', ARRAY['a,b', 'c"d', '{e}'], true, false),
  (50000, gen_random_uuid(), now(), now(), NULL, 'https://example.org/nulls', 'cc0', NULL, NULL, NULL, NULL, NULL, NULL, false);

CREATE TABLE audio (
  id integer PRIMARY KEY,
  identifier uuid NOT NULL,
  created_on timestamptz NOT NULL,
  provider varchar(80),
  url varchar(3000) NOT NULL,
  license varchar(50) NOT NULL,
  creator varchar(2000),
  title varchar(5000),
  genres text[],
  duration integer,
  bit_rate integer,
  sample_rate integer,
  meta_data jsonb,
  alt_files jsonb,
  watermarked boolean,
  removed_from_source boolean NOT NULL,
  filetype varchar(5),
  standardized_popularity double precision
);

INSERT INTO audio
SELECT g,
  md5('audio' || g)::uuid,
  timestamptz '2020-03-01 00:00:00+00' + g * interval '1 hour',
  (ARRAY['freesound', 'jamendo', 'wikimedia_audio', 'ccmixter'])[1 + g % 4],
  'https://freesound.org/data/previews/' || g % 1000 || '/' || md5('a' || g) || '.mp3',
  (ARRAY['by', 'by-nc', 'cc0', 'sampling+'])[1 + g % 4],
  CASE WHEN g % 9 = 0 THEN NULL ELSE (ARRAY['Músico', 'ミュージシャン', 'Musician', 'Музыкант'])[1 + g % 4] || ' ' || g END,
  'Track ' || md5('track' || g) || ' ' || (ARRAY['naïve', '夜', 'Ünïcödé 🎵', 'loop'])[1 + g % 4],
  CASE WHEN g % 6 = 0 THEN NULL ELSE ARRAY['genre ' || g % 20, 'électronique'] END,
  CASE WHEN g % 8 = 0 THEN NULL ELSE 1000 + (g * 37) % 600000 END,
  CASE WHEN g % 8 = 0 THEN NULL ELSE (ARRAY[128000, 192000, 320000])[1 + g % 3] END,
  CASE WHEN g % 8 = 0 THEN NULL ELSE (ARRAY[44100, 48000])[1 + g % 2] END,
  jsonb_build_object('a', md5('m' || g), 'b', md5('n' || g), 'plays', g,
    'description', md5('d1' || g) || ' ' || md5('d2' || g) || ' ' || md5('d3' || g) || ' ' || md5('d4' || g) || ' ' || md5('d5' || g) || ' ' || md5('d6' || g)),
  CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_array(jsonb_build_object('url', 'https://example.org/' || md5('alt' || g) || '.ogg', 'filetype', 'ogg')) END,
  CASE WHEN g % 4 = 0 THEN NULL ELSE g % 2 = 1 END,
  g % 40 = 0,
  (ARRAY['mp3', 'ogg', 'flac', 'wav'])[1 + g % 4],
  CASE WHEN g % 7 = 0 THEN NULL ELSE g / 20000.0 END
FROM generate_series(1, 20000) AS g;

ANALYZE image;
ANALYZE audio;
