// Supa Studio's only script: copy buttons. Pages work without it.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent).then(() => {
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
});

// Uploads with a progress bar: the same form, sent with XMLHttpRequest.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-upload]") || !window.XMLHttpRequest) return;
  event.preventDefault();
  const bar = form.querySelector("progress");
  bar.hidden = false;
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
  });
  request.addEventListener("load", () => {
    // Redirected to the folder on success; an error page otherwise.
    if (request.responseURL && request.status < 400) {
      window.location.assign(request.responseURL);
    } else {
      document.open();
      document.write(request.responseText);
      document.close();
    }
  });
  request.send(new FormData(form));
});
