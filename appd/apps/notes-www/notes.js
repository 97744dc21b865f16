/*
 * notes.js: the notes page.  Lists, adds and deletes notes through the
 * JSON API of the notes application (appd), served under /api/.  The
 * session's LSN travels in a cookie set by appd, so this page always
 * sees its own writes, whichever app server and replica answer.
 */
(function () {
	"use strict";

	var list = document.getElementById("notes");
	var form = document.getElementById("add");
	var err = document.getElementById("error");
	var more = document.getElementById("more");
	var who = document.getElementById("who");
	var next = null;

	function api(method, path, body) {
		var opts = { method: method, credentials: "same-origin",
		    headers: {} };
		if (body !== undefined) {
			opts.headers["Content-Type"] = "application/json";
			opts.body = JSON.stringify(body);
		}
		return fetch(path, opts).then(function (r) {
			if (r.status === 204)
				return null;
			return r.json().then(function (j) {
				if (!r.ok)
					throw new Error(j.error || r.statusText);
				return j;
			});
		});
	}

	function item(n) {
		var li = document.createElement("li");
		var del = document.createElement("button");
		var text = document.createElement("div");
		var meta = document.createElement("div");

		li.id = "note-" + n.id;
		del.textContent = "delete";
		del.addEventListener("click", function () {
			api("DELETE", "/api/notes/" + n.id).then(function () {
				li.remove();
			}).catch(show);
		});
		text.className = "text";
		text.textContent = n.text;		/* never innerHTML */
		meta.className = "meta";
		meta.textContent = n.author + ", " +
		    new Date(n.created).toLocaleString();
		li.appendChild(del);
		li.appendChild(text);
		li.appendChild(meta);
		return li;
	}

	function show(e) {
		err.textContent = e ? e.message : "";
	}

	function load(url, append) {
		return api("GET", url).then(function (j) {
			if (!append)
				list.textContent = "";
			j.notes.forEach(function (n) {
				list.appendChild(item(n));
			});
			next = j.next;
			more.style.display = next ? "block" : "none";
			show(null);
		}).catch(show);
	}

	function whoami() {
		api("GET", "/api/whoami").then(function (j) {
			who.textContent = "answered by " + j.instance +
			    " (pid " + j.pid + "), read from " + j.db_node +
			    " at LSN " + j.db_lsn;
		}).catch(function () {});
	}

	form.addEventListener("submit", function (ev) {
		ev.preventDefault();
		api("POST", "/api/notes", {
			text: form.text.value,
			author: form.author.value
		}).then(function (n) {
			list.insertBefore(item(n), list.firstChild);
			form.text.value = "";
			show(null);
			whoami();
		}).catch(show);
	});
	more.addEventListener("click", function () {
		if (next)
			load(next, true);
	});
	load("/api/notes", false);
	whoami();
})();
