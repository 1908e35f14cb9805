// An individual's page: rename, merge, best photo per flank, move a photo, undo any of them.
(() => {
  "use strict";
  const root = document.getElementById("individual");
  if (!root) return;
  const id = Number(root.dataset.id);
  const status = document.getElementById("status");

  const api = window.reidApi;  // api.js

  function run(promise, next) {
    promise.then(next).catch((err) => { status.textContent = err.message; status.classList.add("error"); });
  }

  const rename = document.getElementById("rename-form");
  if (rename) rename.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { name: document.getElementById("rename-name").value.trim(),
                   notes: document.getElementById("rename-notes").value };
    const sex = document.getElementById("rename-sex").value;
    if (sex) body.sex = sex;
    run(api("PATCH", `/v1/individuals/${id}`, body), () => location.reload());
  });

  const merge = document.getElementById("merge-form");
  if (merge) merge.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const into = Number(document.getElementById("merge-into").value);
    run(api("POST", `/v1/individuals/${id}/merge`, { into_id: into }), () => { location.href = `/individuals/${into}`; });
  });

  for (const b of document.querySelectorAll(".best-button")) b.addEventListener("click", () => {
    run(api("PUT", `/v1/individuals/${id}/best-photo`, { image_id: Number(b.dataset.image), viewpoint: b.dataset.viewpoint }),
        () => location.reload());
  });

  for (const s of document.querySelectorAll(".move-to")) s.addEventListener("change", () => {
    if (!s.value) return;
    run(api("POST", `/v1/images/${s.dataset.image}/move`, { individual_id: Number(s.value) }), () => location.reload());
  });

  for (const b of document.querySelectorAll(".undo-button")) b.addEventListener("click", () => {
    run(api("POST", `/v1/curation/${b.dataset.id}/undo`), (rec) => {
      // undoing a merge brings the merged individual back: show it
      location.href = rec.action === "merge" ? `/individuals/${rec.individual_id}` : location.pathname;
    });
  });
  root.dataset.ready = "true";
})();
