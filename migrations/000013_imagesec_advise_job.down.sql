DELETE FROM imagesec_jobs WHERE kind = 'advise';
ALTER TABLE imagesec_jobs DROP CONSTRAINT imagesec_jobs_kind_check;
ALTER TABLE imagesec_jobs ADD CONSTRAINT imagesec_jobs_kind_check
    CHECK (kind IN ('collect', 'inspect', 'upgrade', 'publish'));
