#version 330 core
// Shadow bands along the inside of the lid margins (see renderer.py): the lid and its
// lashes shade the eyeball just below the upper margin, less above the lower one.
uniform mat4 u_proj;
in vec3 a_pos;
in float a_shade;    // fraction of light taken away: largest at the margin, 0 inside
out float v_shade;

void main() {
    v_shade = a_shade;
    gl_Position = u_proj * vec4(a_pos, 1.0);
}
