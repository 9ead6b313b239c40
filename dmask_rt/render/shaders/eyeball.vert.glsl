#version 330 core
// Both eyeballs in one instanced draw. The mesh is a unit hemisphere around -z, turned
// here to face the camera (the only part of a sphere that can be seen); the eyeball's
// own orientation only enters through the local direction used for its colours.
uniform mat4 u_proj;
uniform vec3 u_center[2];
uniform mat3 u_rotation[2];   // eyeball-local -> camera frame
uniform float u_radius;
in vec3 a_dir;                // unit hemisphere point
out vec3 v_dir;               // eyeball-local direction
out vec3 v_normal;            // camera frame
out vec3 v_pos;

void main() {
    vec3 center = u_center[gl_InstanceID];
    // Orthonormal basis whose -z axis points from the centre to the camera (origin).
    vec3 e3 = normalize(center);
    vec3 helper = abs(e3.y) < 0.9 ? vec3(0.0, 1.0, 0.0) : vec3(1.0, 0.0, 0.0);
    vec3 e1 = normalize(cross(helper, e3));
    vec3 e2 = cross(e3, e1);
    v_normal = mat3(e1, e2, e3) * a_dir;
    v_dir = transpose(u_rotation[gl_InstanceID]) * v_normal;
    v_pos = center + u_radius * v_normal;
    gl_Position = u_proj * vec4(v_pos, 1.0);
}
