// Upload wizard: send the form to the JSON API with XMLHttpRequest to show progress.
// Without JavaScript the same form posts to /upload and the server answers with a page.
(function () {
  "use strict";
  var script = document.currentScript;
  var labels = JSON.parse(script.getAttribute("data-labels") || "{}");
  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var box = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var status = document.getElementById("upload-status");
  var errorBox = document.getElementById("upload-error");
  var button = form.querySelector("button[type=submit]");

  function fill(text, values) {
    return text.replace(/\{(\w+)\}/g, function (_, k) { return values[k] !== undefined ? values[k] : ""; });
  }

  function showError(message) {
    errorBox.textContent = "";
    var strong = document.createElement("span");
    strong.textContent = labels.failed + " ";
    var detail = document.createElement("span");
    detail.lang = "en";
    detail.textContent = message;
    errorBox.appendChild(strong);
    errorBox.appendChild(detail);
    errorBox.hidden = false;
    status.textContent = "";
    box.hidden = true;
    button.disabled = false;
  }

  form.addEventListener("submit", function (event) {
    if (!form.checkValidity()) { return; }
    event.preventDefault();
    errorBox.hidden = true;
    box.hidden = false;
    bar.value = 0;
    button.disabled = true;
    var data = new FormData(form);
    var token = data.get("csrf_token");
    data.delete("csrf_token");
    // The file part goes last so the text fields are known before the data streams in.
    var file = data.get("file");
    data.delete("file");
    data.append("file", file);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("data-api"));
    xhr.setRequestHeader("X-CSRF-Token", token);
    xhr.setRequestHeader("Accept", "application/json");
    var lastAnnounced = -1;
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) { return; }
      var percent = Math.floor((e.loaded / e.total) * 100);
      bar.value = percent;
      // Announce in steps of 25 % so screen readers are not flooded.
      var step = Math.floor(percent / 25) * 25;
      if (step !== lastAnnounced) {
        lastAnnounced = step;
        status.textContent = fill(labels.sending, { p: percent });
      }
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      status.textContent = labels.processing;
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (xhr.status === 201 && body && body.version) {
        var slug = body.version.dataset;
        status.textContent = fill(labels.done, { v: body.version.version, d: slug }) + " ";
        var link = document.createElement("a");
        link.href = "/datasets/" + encodeURIComponent(slug);
        link.textContent = labels.open;
        status.appendChild(link);
        button.disabled = false;
      } else {
        showError((body && body.error) || ("HTTP " + xhr.status));
      }
    });
    xhr.addEventListener("error", function () { showError("network error"); });
    xhr.send(data);
  });
})();
