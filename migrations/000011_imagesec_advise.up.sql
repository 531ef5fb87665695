-- imagesec's advise and upgrade stages (issue 6): the upgrades advised for
-- each image against a fix feed and advisory file, and the offline
-- upgrades made from them.

-- The latest advice per image: advising again replaces an image's rows.
CREATE TABLE imagesec_advice (
    image_id      bigint NOT NULL REFERENCES imagesec_images (id) ON DELETE CASCADE,
    name          text NOT NULL,
    architecture  text NOT NULL,
    source        text NOT NULL DEFAULT '',
    from_version  text NOT NULL,
    to_version    text NOT NULL,
    -- [{id, fixed, severity}] of the advisories the upgrade closes.
    advisories    jsonb NOT NULL DEFAULT '[]',
    severity      text NOT NULL DEFAULT '',
    -- The feed has to_version (deb_url/deb_sha256 say where): upgrade can
    -- apply it.
    available     boolean NOT NULL,
    deb_url       text NOT NULL DEFAULT '',
    deb_sha256    text NOT NULL DEFAULT '',
    deb_size      bigint NOT NULL DEFAULT 0,
    feed          text NOT NULL DEFAULT '',
    advised_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, name, architecture)
);

-- One row per offline upgrade: the parent image, the image it produced
-- (inspected and stored like any other), where its file is and what was
-- applied. A failed upgrade leaves a row with its error and no result.
CREATE TABLE imagesec_upgrades (
    id               bigserial PRIMARY KEY,
    image_id         bigint NOT NULL REFERENCES imagesec_images (id) ON DELETE CASCADE,
    result_image_id  bigint REFERENCES imagesec_images (id) ON DELETE SET NULL,
    path             text NOT NULL DEFAULT '',
    status           text NOT NULL,   -- "done" or "failed"
    -- [{name, architecture, from, to, advisories}]
    applied          jsonb NOT NULL DEFAULT '[]',
    error            text NOT NULL DEFAULT '',
    feed             text NOT NULL DEFAULT '',
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX imagesec_upgrades_image ON imagesec_upgrades (image_id);
CREATE INDEX imagesec_upgrades_result ON imagesec_upgrades (result_image_id);
